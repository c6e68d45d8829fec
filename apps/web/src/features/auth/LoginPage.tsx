import { useState, type FormEvent } from 'react';
import type { LoginResponse, Me } from '@vaultline/contracts';
import { api } from '../../lib/api.ts';
import { useAction } from '../../lib/use-action.ts';
import { Logo } from '../../components/Logo.tsx';
import { FormError } from '../../components/FormError.tsx';

export function LoginPage({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  // Set once the password was right for an account with two-factor sign-in: the code is asked next.
  const [challenge, setChallenge] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const { busy, error, run } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    return run(async () => {
      if (challenge) {
        onSignedIn(await api<Me>('/api/auth/login/totp', { method: 'POST', body: { challenge, code } }));
        return;
      }
      const res = await api<LoginResponse>('/api/auth/login', { method: 'POST', body: { username, password } });
      if ('secondFactor' in res) {
        setPassword('');
        setChallenge(res.challenge);
      } else onSignedIn(res);
    });
  };

  return (
    <div className="auth-page">
      <form className="card auth-card" onSubmit={(e) => void submit(e)}>
        <div className="auth-brand">
          <Logo size={40} />
          <h1>Vaultline</h1>
          <p className="muted">Backup for VMware vSphere</p>
        </div>
        {challenge ? (
          <>
            <p>Enter the 6-digit code your authenticator app shows for {username}.</p>
            <label>
              Code
              <input
                name="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                pattern="[0-9]{6}"
                maxLength={6}
                value={code}
                onChange={(e) => setCode(e.target.value.replace(/\D/g, ''))}
                required
                autoFocus
              />
            </label>
          </>
        ) : (
          <>
            <label>
              Username
              <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
            </label>
            <label>
              Password
              <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus />
            </label>
          </>
        )}
        <FormError message={error} />
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Signing in…' : challenge ? 'Verify' : 'Sign in'}
        </button>
        {challenge && (
          <button
            type="button"
            className="link"
            onClick={() => {
              setChallenge(null);
              setCode('');
            }}
          >
            Start over
          </button>
        )}
      </form>
    </div>
  );
}
