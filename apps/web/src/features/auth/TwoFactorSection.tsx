import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { Me, TotpEnrollment } from '@vaultline/contracts';
import { confirmTotp, disableTotp, enrollTotp } from '../../api/users.ts';
import { FormError } from '../../components/FormError.tsx';
import { useAction } from '../../lib/use-action.ts';
import { useMe } from '../../lib/me.ts';

const CodeInput = ({ value, onChange }: { value: string; onChange: (v: string) => void }) => (
  <label>
    Code from the app
    <input name="code" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6}" maxLength={6} value={value} onChange={(e) => onChange(e.target.value.replace(/\D/g, ''))} required />
  </label>
);

/** Admins: a TOTP authenticator app as a second sign-in factor. */
export function TwoFactorSection() {
  const me = useMe();
  const qc = useQueryClient();
  const [enrollment, setEnrollment] = useState<TotpEnrollment | null>(null);
  const [code, setCode] = useState('');
  const [password, setPassword] = useState('');
  const [flash, setFlash] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const changed = (m: Me, message: string) => {
    qc.setQueryData(['me'], m);
    setEnrollment(null);
    setCode('');
    setPassword('');
    setFlash(message);
  };
  const submit = (e: FormEvent, fn: () => Promise<void>) => {
    e.preventDefault();
    setFlash(null);
    return run(fn);
  };

  return (
    <section className="card form narrow" aria-labelledby="totp-title" data-testid="two-factor">
      <h3 id="totp-title">Two-factor sign-in</h3>
      {flash && (
        <div className="alert ok" role="status">
          {flash}
        </div>
      )}
      {me.totpEnabled ? (
        <form onSubmit={(e) => void submit(e, async () => changed(await disableTotp(password, code), 'Two-factor sign-in is off.'))}>
          <p>On: signing in asks for a code from your authenticator app after the password. To turn it off, confirm with both.</p>
          <label>
            Your password
            <input name="currentPassword" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
          </label>
          <CodeInput value={code} onChange={setCode} />
          <FormError message={error} />
          <button type="submit" className="danger" disabled={busy}>
            Turn off
          </button>
        </form>
      ) : enrollment ? (
        <form onSubmit={(e) => void submit(e, async () => changed(await confirmTotp(code), 'Two-factor sign-in is on. You will be asked for a code at every sign-in.'))}>
          <p>Add this account to an authenticator app (shown only now), then enter the code it shows to turn two-factor sign-in on.</p>
          <p>
            Secret key: <code data-testid="totp-secret">{enrollment.secret.replace(/(.{4})/g, '$1 ').trim()}</code>
          </p>
          <p className="small">
            Or open this link with the app: <code className="thumb">{enrollment.uri}</code>
          </p>
          <CodeInput value={code} onChange={setCode} />
          <FormError message={error} />
          <button type="submit" className="primary" disabled={busy}>
            Turn on
          </button>
        </form>
      ) : (
        <form onSubmit={(e) => void submit(e, async () => setEnrollment(await enrollTotp()))}>
          <p>Off. With it on, signing in also needs the 6-digit code of an authenticator app (TOTP).</p>
          <FormError message={error} />
          <button type="submit" className="primary" disabled={busy}>
            Set up two-factor sign-in
          </button>
        </form>
      )}
    </section>
  );
}
