import type { Me } from '@vaultline/contracts';
import { signOut } from '../../api/users.ts';
import { Logo } from '../../components/Logo.tsx';
import { PasswordForm } from './PasswordForm.tsx';

/** First login: the one-time password must be replaced before anything else. */
export function ChangePasswordPage({ me, onChanged, onSignOut }: { me: Me; onChanged: () => void; onSignOut: () => void }) {
  return (
    <div className="auth-page">
      <PasswordForm
        className="card auth-card"
        currentLabel="One-time password"
        submitLabel="Save and continue"
        busyLabel="Saving…"
        onChanged={onChanged}
        header={
          <div className="auth-brand">
            <Logo size={40} />
            <h1>Choose your password</h1>
            <p className="muted">
              Signed in as <strong>{me.username}</strong> with a one-time password. Pick your own before going on.
            </p>
          </div>
        }
        footer={
          <button type="button" className="link" onClick={() => void signOut().finally(onSignOut)}>
            Sign out
          </button>
        }
      />
    </div>
  );
}
