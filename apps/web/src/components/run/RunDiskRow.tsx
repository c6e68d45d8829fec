import type { DiskProgress, Run, RunStatus } from '@vaultline/contracts';
import { formatBytes, formatDuration, secondsBetween } from '../../lib/format.ts';
import { ProgressBar } from '../ProgressBar.tsx';
import { transportLabel } from './transport.ts';

type RunDisk = Run['vms'][number]['disks'][number];

/** The busiest of source read, processing and repository write. */
function bottleneckOf(b: DiskProgress['bottleneck']): string {
  const parts = [
    ['source', b.source],
    ['processing', b.processing],
    ['target', b.target],
  ] as const;
  return [...parts].sort((x, y) => y[1] - x[1])[0]![0];
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

const IN_FLIGHT = new Set(['queued', 'opening', 'reading']);

/** One disk of a run: transport and why, bytes read/skipped/stored, speed, ETA and bottleneck while live. */
export function RunDiskRow({ disk, live, vmStatus, detailed }: { disk: RunDisk; live: DiskProgress | undefined; vmStatus: RunStatus; detailed: boolean }) {
  const running = vmStatus === 'running';
  const read = live?.bytesRead ?? disk.bytesRead;
  const skipped = live?.bytesSkipped ?? disk.bytesSkipped;
  const stored = live?.bytesWritten ?? disk.bytesWritten;
  const isLive = running && live !== undefined && !disk.finishedAt;
  const elapsed = secondsBetween(disk.startedAt, disk.finishedAt);
  const speed = isLive ? live.bytesPerSecond : elapsed && elapsed > 0 && disk.finishedAt ? read / elapsed : 0;
  const transport = live?.transport ?? disk.transport;
  // A disk left mid-copy by a VM that has ended (cancelled, failed) ended with it.
  const phase = !running && vmStatus !== 'queued' && !disk.finishedAt && IN_FLIGHT.has(disk.phase) ? vmStatus : isLive ? live.phase : disk.phase;
  return (
    <div className="run-disk" data-testid="run-disk">
      <div className="row small">
        <span>
          <strong>{disk.label}</strong> <span className="muted">{formatBytes(disk.capacityBytes)}</span> ·{' '}
          <span data-testid="disk-transport">{transportLabel(transport)}</span>
          {disk.cbtUsed && <span className="muted"> · CBT</span>} <span className="muted">· {phase}</span>
        </span>
        <span className="muted">
          read {formatBytes(read)} · skipped {formatBytes(skipped)} · stored {formatBytes(stored)}
          {speed > 0 && ` · ${formatBytes(speed)}/s`}
          {isLive && live.etaSeconds !== null && ` · ${formatDuration(live.etaSeconds)} left`}
        </span>
      </div>
      {/* Progress over what has to be read: unallocated or unchanged areas are skipped, not read. */}
      <ProgressBar done={disk.finishedAt ? 1 : read} total={disk.finishedAt ? 1 : Math.max(read, disk.capacityBytes - skipped)} label={`${disk.label} progress`} />
      {isLive && detailed && (
        <p className="small muted" data-testid="bottleneck">
          Bottleneck: <strong>{bottleneckOf(live.bottleneck)}</strong> — busy reading the source {pct(live.bottleneck.source)}, processing {pct(live.bottleneck.processing)}, writing to the
          repository {pct(live.bottleneck.target)}
        </p>
      )}
      {disk.error && <p className="reason">{disk.error}</p>}
      {disk.transportReason.length > 0 && (
        <div className="small">
          {detailed && <span className="muted">Why {transportLabel(transport)}:</span>}
          <ul className="reasons muted" aria-label={`transport reasons for ${disk.label}`}>
            {disk.transportReason.map((r, i) => (
              <li key={i}>{r}</li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}
