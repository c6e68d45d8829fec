import { useEffect, useRef, useState, type ReactNode } from 'react';
import { errorMessage } from '../lib/api.ts';
import { FormError } from './FormError.tsx';

/** A modal confirmation (native <dialog>: focus is trapped, Escape cancels). */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  error?: string | null;
  /** Destructive actions: the signed-in user's password, sent with the request. */
  password?: { value: string; onChange: (value: string) => void };
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h3 id="confirm-title">{props.title}</h3>
      <div className="dialog-body">{props.children}</div>
      {props.password && (
        <form
          className="form"
          onSubmit={(e) => {
            e.preventDefault();
            if (props.password?.value) props.onConfirm();
          }}
        >
          <label>
            Your password, to confirm
            <input type="password" name="currentPassword" autoComplete="current-password" value={props.password.value} onChange={(e) => props.password?.onChange(e.target.value)} />
          </label>
        </form>
      )}
      <FormError message={props.error ?? null} />
      <div className="dialog-actions">
        <button type="button" onClick={props.onCancel} autoFocus>
          Cancel
        </button>
        <button type="button" className={props.danger ? 'danger' : 'primary'} disabled={props.busy || props.password?.value === ''} onClick={props.onConfirm}>
          {props.busy ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/**
 * A confirmation about one thing (the row to delete, say): `ask(subject)` opens the dialog, confirming runs
 * `act` while the dialog shows it is busy; on success the dialog closes and `then` gets the result; on failure
 * the error shows in the dialog, which stays open. Spread `dialog` into a ConfirmDialog.
 * With `reauth`, the dialog asks for the user's password and `act` gets it (the Director wants it again
 * for what cannot be undone).
 */
export function useConfirmation<T, R>(act: (subject: T, currentPassword: string) => Promise<R>, then: (result: R, subject: T) => unknown, opts: { reauth?: boolean } = {}) {
  const [subject, setSubject] = useState<T | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [password, setPassword] = useState('');
  return {
    subject,
    ask: (s: T) => {
      setError(null);
      setPassword('');
      setSubject(s);
    },
    dialog: {
      open: subject !== null,
      busy,
      error,
      ...(opts.reauth ? { password: { value: password, onChange: setPassword } } : {}),
      onCancel: () => setSubject(null),
      onConfirm: () => {
        if (subject === null) return;
        const s = subject;
        setBusy(true);
        act(s, password)
          .then(async (r) => {
            setPassword('');
            setSubject(null);
            await then(r, s);
          })
          .catch((err: unknown) => setError(errorMessage(err)))
          .finally(() => setBusy(false));
      },
    },
  };
}
