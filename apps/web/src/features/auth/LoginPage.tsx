import { useState, type FormEvent } from 'react';
import type { Me } from '@vaultline/contracts';
import { api } from '../../lib/api.ts';
import { useAction } from '../../lib/use-action.ts';
import { Logo } from '../../components/Logo.tsx';
import { FormError } from '../../components/FormError.tsx';

export function LoginPage({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    return run(async () => onSignedIn(await api<Me>('/api/auth/login', { method: 'POST', body: { username, password } })));
  };

  return (
    <div className="auth-page">
      <form className="card auth-card" onSubmit={(e) => void submit(e)}>
        <div className="auth-brand">
          <Logo size={40} />
          <h1>Vaultline</h1>
          <p className="muted">Backup for VMware vSphere</p>
        </div>
        <label>
          Username
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required autoFocus />
        </label>
        <FormError message={error} />
        <button className="primary" type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
