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
      <FormError message={props.error ?? null} />
      <div className="dialog-actions">
        <button type="button" onClick={props.onCancel} autoFocus>
          Cancel
        </button>
        <button type="button" className={props.danger ? 'danger' : 'primary'} disabled={props.busy} onClick={props.onConfirm}>
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
 */
export function useConfirmation<T, R>(act: (subject: T) => Promise<R>, then: (result: R, subject: T) => unknown) {
  const [subject, setSubject] = useState<T | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return {
    subject,
    ask: (s: T) => {
      setError(null);
      setSubject(s);
    },
    dialog: {
      open: subject !== null,
      busy,
      error,
      onCancel: () => setSubject(null),
      onConfirm: () => {
        if (subject === null) return;
        const s = subject;
        setBusy(true);
        act(s)
          .then(async (r) => {
            setSubject(null);
            await then(r, s);
          })
          .catch((err: unknown) => setError(errorMessage(err)))
          .finally(() => setBusy(false));
      },
    },
  };
}
