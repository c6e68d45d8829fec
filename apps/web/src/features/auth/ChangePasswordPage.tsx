import { useState, type FormEvent } from 'react';
import { PASSWORD_MIN_LENGTH, type Me } from '@vaultline/contracts';
import { api } from '../../lib/api.ts';
import { useAction } from '../../lib/use-action.ts';
import { Logo } from '../../components/Logo.tsx';
import { FormError } from '../../components/FormError.tsx';

export function ChangePasswordPage({ me, onChanged, onSignOut }: { me: Me; onChanged: () => void; onSignOut: () => void }) {
  const [currentPassword, setCurrent] = useState('');
  const [newPassword, setNew] = useState('');
  const [confirm, setConfirm] = useState('');
  const { busy, error, setError, run } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (newPassword !== confirm) {
      setError('The two new passwords differ.');
      return;
    }
    return run(async () => {
      await api('/api/auth/change-password', { method: 'POST', body: { currentPassword, newPassword } });
      onChanged();
    });
  };

  return (
    <div className="auth-page">
      <form className="card auth-card" onSubmit={(e) => void submit(e)}>
        <div className="auth-brand">
          <Logo size={40} />
          <h1>Choose your password</h1>
          <p className="muted">
            Signed in as <strong>{me.username}</strong> with a one-time password. Pick your own before going on.
          </p>
        </div>
        <label>
          One-time password
          <input name="currentPassword" type="password" autoComplete="current-password" value={currentPassword} onChange={(e) => setCurrent(e.target.value)} required />
        </label>
        <label>
          New password <span className="muted">(at least {PASSWORD_MIN_LENGTH} characters)</span>
          <input name="newPassword" type="password" autoComplete="new-password" minLength={PASSWORD_MIN_LENGTH} value={newPassword} onChange={(e) => setNew(e.target.value)} required />
        </label>
        <label>
          New password again
          <input name="confirmPassword" type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} required />
        </label>
        <FormError message={error} />
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save and continue'}
        </button>
        <button type="button" className="link" onClick={() => void api('/api/auth/logout', { method: 'POST' }).finally(onSignOut)}>
          Sign out
        </button>
      </form>
    </div>
  );
}
