import { useState, type FormEvent, type ReactNode } from 'react';
import { PASSWORD_MIN_LENGTH } from '@vaultline/contracts';
import { changePassword } from '../../api/users.ts';
import { useAction } from '../../lib/use-action.ts';
import { FormError } from '../../components/FormError.tsx';

/** Current password, new one twice; the server checks the current one and the rules. */
export function PasswordForm(props: { currentLabel: string; submitLabel: string; busyLabel: string; onChanged: () => void; className: string; header?: ReactNode; footer?: ReactNode }) {
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
      await changePassword(currentPassword, newPassword);
      setCurrent('');
      setNew('');
      setConfirm('');
      props.onChanged();
    });
  };

  return (
    <form className={props.className} onSubmit={(e) => void submit(e)}>
      {props.header}
      <label>
        {props.currentLabel}
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
        {busy ? props.busyLabel : props.submitLabel}
      </button>
      {props.footer}
    </form>
  );
}
