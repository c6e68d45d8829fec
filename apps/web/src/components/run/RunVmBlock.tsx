import type { Run } from '@vaultline/contracts';
import { liveKey, type LiveProgress } from '../../api/live.ts';
import { formatDuration, secondsBetween } from '../../lib/format.ts';
import { writesDisks } from '../../lib/run-title.ts';
import { StatusPill } from '../StatusPill.tsx';
import { RunDiskRow } from './RunDiskRow.tsx';

type RunVm = Run['vms'][number];

/** A restore's per-disk verify, from its run-log line ("disk Hard disk 1: wrote … verified SHA-256 <hex>"). */
function verifyLine(vm: RunVm, label: string): string | undefined {
  const line = vm.log.find((l) => l.level === 'info' && l.message.startsWith(`disk ${label}: `) && l.message.includes('verified SHA-256'));
  const sha = line && /verified SHA-256 ([0-9a-f]{64})/.exec(line.message)?.[1];
  return sha ? `read back and verified SHA-256 ${sha}: the same as the restore point’s` : undefined;
}

export function RunVmBlock({ vm, live, detailed, transporterName, kind = 'backup' }: { vm: RunVm; live: LiveProgress; detailed: boolean; transporterName?: string | undefined; kind?: Run['kind'] }) {
  const took = secondsBetween(vm.startedAt, vm.finishedAt);
  const restore = writesDisks(kind);
  return (
    <section className="run-vm" aria-label={`VM ${vm.vmName}`} data-testid="run-vm">
      <div className="row">
        <span>
          <strong>{vm.vmName}</strong> {detailed && <StatusPill status={vm.status} />} {(!detailed || vm.phase !== vm.status) && <span className="muted small">{vm.phase}</span>}
        </span>
        {detailed && (
          <span className="muted small">
            {transporterName ?? vm.transporterId ?? 'no Transporter yet'}
            {!restore && vm.quiesced !== null && ` · ${vm.quiesced ? 'quiesced' : 'crash-consistent'}`}
            {took !== null && ` · ${formatDuration(took)}`}
          </span>
        )}
      </div>
      {vm.status === 'running' && vm.phaseDetail && (
        <p className="small muted" data-testid="phase-detail" role="status">
          {vm.phaseDetail}…
        </p>
      )}
      {vm.error && <p className="reason">{vm.error}</p>}
      {vm.disks.length === 0 && vm.status === 'queued' && <p className="muted small">Waiting for a Transporter…</p>}
      {vm.disks.map((d) => (
        <RunDiskRow key={d.id} disk={d} live={live[liveKey(vm.id, d.deviceKey)]} vmStatus={vm.status} detailed={detailed} restore={restore} verified={restore ? verifyLine(vm, d.label) : undefined} />
      ))}
    </section>
  );
}
