import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { RepositoryRestorePoint } from '@vaultline/contracts';
import { releaseHold } from '../../api/restores.ts';
import { ConfirmDialog, useConfirmation } from '../../components/ConfirmDialog.tsx';
import { formatDateTime } from '../../lib/format.ts';

/**
 * The operator's release of the retention hold a ransomware-suspect point put on its VM: retention prunes
 * again from the next backup on. Asks why (kept in the audit log).
 */
export function ReleaseHoldButton({ point: p }: { point: RepositoryRestorePoint }) {
  const qc = useQueryClient();
  const [note, setNote] = useState('');
  const release = useConfirmation(
    (point: RepositoryRestorePoint) => releaseHold(point.id, note),
    () => qc.invalidateQueries({ queryKey: ['restore-points'] }).then(() => qc.invalidateQueries({ queryKey: ['repositories'] })),
  );
  const when = formatDateTime(p.createdAt);
  return (
    // Inside a clickable table row (the restore wizard's point choice): the button and dialog do not choose the row.
    <span onClick={(e) => e.stopPropagation()}>
      <button
        type="button"
        className="small"
        aria-label={`Release retention hold of ${p.vmName} from ${when} in ${p.repository}`}
        onClick={() => {
          setNote('');
          release.ask(p);
        }}
      >
        Release hold
      </button>
      {/* Mounted only while asked: every suspect row has this button, and the dialog's title id must stay unique. */}
      {release.subject && (
        <ConfirmDialog {...release.dialog} title={`Release the retention hold of ${p.vmName}?`} confirmLabel="Release hold">
          <p>
            The backup of {when} stored new data that looked encrypted. While the hold is on, retention removes no restore point of {p.vmName} in {p.repository}. Release it
            only once the VM is known to be clean.
          </p>
          <label>
            Why it is safe to release
            <input type="text" name="note" value={note} maxLength={500} onChange={(e) => setNote(e.target.value)} />
          </label>
        </ConfirmDialog>
      )}
    </span>
  );
}
