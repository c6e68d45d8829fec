import type { Run } from '@vaultline/contracts';
import { StatusPill } from '../../components/StatusPill.tsx';
import { TableHead } from '../../components/TableHead.tsx';
import { formatBytes, formatDuration, secondsBetween } from '../../lib/format.ts';
import { runBytes, vmBytes } from '../../lib/run-totals.ts';

type RunVm = Run['vms'][number];

/** "2 incremental, 1 full": how each disk was read (disks not read yet are not counted). */
function readModes(vm: RunVm): string {
  const incremental = vm.disks.filter((d) => d.readMode === 'changed').length;
  const full = vm.disks.filter((d) => d.readMode === 'full').length;
  const parts = [incremental > 0 && `${incremental} incremental`, full > 0 && `${full} full`].filter(Boolean);
  return parts.length ? parts.join(', ') : '—';
}

/**
 * A backup run at a glance, above its VMs' details: per VM how its disks were read (incremental or full), whether
 * its snapshot was quiesced, what was read and stored and how long it took; the last row totals the run.
 */
export function RunSummary({ run }: { run: Run }) {
  const totals = runBytes(run);
  const incremental = run.vms.reduce((n, vm) => n + vm.disks.filter((d) => d.readMode === 'changed').length, 0);
  const full = run.vms.reduce((n, vm) => n + vm.disks.filter((d) => d.readMode === 'full').length, 0);
  const took = secondsBetween(run.startedAt, run.finishedAt);
  return (
    <section className="card" aria-labelledby="summary-title">
      <h3 id="summary-title">Summary</h3>
      <table className="cards" data-testid="run-summary">
        <TableHead columns={['VM', 'Result', 'Disks read', 'Consistency', 'Read', 'Stored', 'Took']} />
        <tbody>
          {run.vms.map((vm) => {
            const b = vmBytes(vm);
            const vmTook = secondsBetween(vm.startedAt, vm.finishedAt);
            return (
              <tr key={vm.id} data-testid="summary-vm">
                <td data-label="VM">
                  <strong>{vm.vmName}</strong>
                </td>
                <td data-label="Result">
                  <StatusPill status={vm.status} />
                </td>
                <td data-label="Disks read">{readModes(vm)}</td>
                <td data-label="Consistency">{vm.quiesced === null ? <span className="muted">{vm.finishedAt ? 'no snapshot' : 'no snapshot yet'}</span> : vm.quiesced ? 'quiesced' : 'crash-consistent'}</td>
                <td data-label="Read">{formatBytes(b.read)}</td>
                <td data-label="Stored">{formatBytes(b.stored)}</td>
                <td data-label="Took">{vmTook === null ? <span className="muted">—</span> : formatDuration(vmTook)}</td>
              </tr>
            );
          })}
        </tbody>
        {run.vms.length > 1 && (
          <tfoot>
            <tr data-testid="summary-total">
              <th scope="row" data-label="VM">
                All {run.vms.length} VMs
              </th>
              <td />
              <td data-label="Disks read">
                {incremental} incremental, {full} full
              </td>
              <td data-label="Consistency">
                {run.vms.filter((vm) => vm.quiesced).length} quiesced, {run.vms.filter((vm) => vm.quiesced === false).length} crash-consistent
              </td>
              <td data-label="Read">{formatBytes(totals.read)}</td>
              <td data-label="Stored">{formatBytes(totals.stored)}</td>
              <td data-label="Took">{took === null ? <span className="muted">—</span> : formatDuration(took)}</td>
            </tr>
          </tfoot>
        )}
      </table>
    </section>
  );
}
