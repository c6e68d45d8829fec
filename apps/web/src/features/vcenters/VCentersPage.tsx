import { useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import type { VCenter } from '@vaultline/contracts';
import { deleteVCenter, useVCenters } from '../../api/vcenters.ts';
import { ConfirmDialog, useConfirmation } from '../../components/ConfirmDialog.tsx';
import { LoadError, Loading, Page } from '../../components/Page.tsx';
import { formatDateTime } from '../../lib/format.ts';
import { useMe } from '../../lib/me.ts';
import { can } from '../../lib/roles.ts';
import { AddVCenterForm } from './AddVCenterForm.tsx';
import { TableHead } from '../../components/TableHead.tsx';

export default function VCentersPage() {
  const me = useMe();
  const qc = useQueryClient();
  const vcenters = useVCenters();
  const [adding, setAdding] = useState(false);
  const [flash, setFlash] = useState<string | null>(null);
  const removal = useConfirmation(
    (v: VCenter, password) => deleteVCenter(v.id, password),
    async (_, v) => {
      setFlash(`vCenter ${v.name} removed.`);
      await qc.invalidateQueries({ queryKey: ['vcenters'] });
    },
    { reauth: true },
  );
  const admin = can(me.role, 'admin');

  return (
    <Page
      title="vCenters"
      subtitle="Where the VMs come from. Each is pinned to the certificate confirmed when it was added."
      actions={
        admin &&
        !adding && (
          <button type="button" className="primary" onClick={() => setAdding(true)}>
            Add vCenter
          </button>
        )
      }
    >
      {flash && (
        <div className="alert ok" role="status">
          {flash}
        </div>
      )}
      {adding && (
        <AddVCenterForm
          onCancel={() => setAdding(false)}
          onAdded={(v) => {
            setAdding(false);
            setFlash(`vCenter ${v.name} added.`);
          }}
        />
      )}
      {vcenters.isPending && <Loading what="vCenters" />}
      {vcenters.isError && <LoadError what="vCenters" error={vcenters.error} />}
      {vcenters.data?.length === 0 && <p className="muted">No vCenter yet.</p>}
      {vcenters.data && vcenters.data.length > 0 && (
        <section className="card">
          <table className="cards" data-testid="vcenters">
            <TableHead columns={['vCenter', 'User', 'Pinned certificate (SHA-256)', 'Added']} actions="Actions" />
            <tbody>
              {vcenters.data.map((v) => (
                <tr key={v.id} data-testid="vcenter-row">
                  <td data-label="vCenter">
                    <strong>{v.name}</strong> {v.isLab && <span className="pill">lab</span>}
                    <div className="muted small mono">{v.url}</div>
                  </td>
                  <td data-label="User">{v.username}</td>
                  <td data-label="Pinned certificate (SHA-256)" className="mono small thumb-cell" title={v.thumbprintSha256 ?? undefined}>
                    {v.thumbprintSha256 ?? <span className="muted">none (plain HTTP)</span>}
                  </td>
                  <td data-label="Added">{formatDateTime(v.createdAt)}</td>
                  <td className="actions">
                    {admin && (
                      <button
                        type="button"
                        className="danger-text"
                        aria-label={`Remove ${v.name}`}
                        onClick={() => removal.ask(v)}
                      >
                        Remove
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      <ConfirmDialog {...removal.dialog} title={`Remove ${removal.subject?.name ?? 'vCenter'}?`} confirmLabel="Remove vCenter" danger>
        <p>Its stored password is deleted. A vCenter that jobs still use cannot be removed; restore points already taken stay in their repositories.</p>
      </ConfirmDialog>
    </Page>
  );
}
