import { useRef } from 'react';
import type { Bottleneck, DiskProgress, Run, RunStatus } from '@vaultline/contracts';
import { formatBytes, formatDuration, secondsBetween } from '../../lib/format.ts';
import { SpeedWindow, diskProgress, liveEta, showsBottleneck } from '../../lib/live-figures.ts';
import { ProgressBar } from '../ProgressBar.tsx';
import { transportLabel } from './transport.ts';

type RunDisk = Run['vms'][number]['disks'][number];

/** The busiest of source read, processing and target write (a restore's source is the repository). */
function bottleneckOf(b: Bottleneck, restore: boolean): string {
  const parts = [
    [restore ? 'repository' : 'source', b.source],
    ['processing', b.processing],
    [restore ? 'disk write' : 'target', b.target],
  ] as const;
  return [...parts].sort((x, y) => y[1] - x[1])[0]![0];
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

const IN_FLIGHT = new Set(['queued', 'opening', 'reading']);

/** The windowed read speed of a live disk (one window per row, fed each tick as it renders). */
function useWindowSpeed(live: DiskProgress | undefined): number | null {
  const speedWindow = useRef<SpeedWindow | null>(null);
  speedWindow.current ??= new SpeedWindow();
  return live ? speedWindow.current.push({ t: Date.now(), read: live.bytesRead }) : speedWindow.current.speed();
}

/**
 * One disk of a run: transport and why, bytes moved, speed, ETA while live, and the bottleneck (live, then as recorded). A backup reads the
 * disk into the repository (read / skipped / stored); a restore writes it from the repository (written / zeros
 * skipped) and then reads it back to compare SHA-256 with the restore point (`verified`: that log line).
 */
export function RunDiskRow({ disk, live, vmStatus, detailed, restore = false, verified }: { disk: RunDisk; live: DiskProgress | undefined; vmStatus: RunStatus; detailed: boolean; restore?: boolean; verified?: string | undefined }) {
  const running = vmStatus === 'running';
  const read = live?.bytesRead ?? disk.bytesRead;
  const skipped = live?.bytesSkipped ?? disk.bytesSkipped;
  const stored = live?.bytesWritten ?? disk.bytesWritten;
  const verifiedBytes = live?.bytesVerified ?? disk.bytesVerified;
  const isLive = running && live !== undefined && !disk.finishedAt;
  const windowSpeed = useWindowSpeed(isLive ? live : undefined);
  const elapsed = secondsBetween(disk.startedAt, disk.finishedAt);
  // Live: the latest tick's; afterwards the average and fastest second the Transporter recorded (older runs: bytes over time).
  const speed = isLive ? (windowSpeed ?? live.bytesPerSecond) : disk.speed.average > 0 ? disk.speed.average : elapsed && elapsed > 0 && disk.finishedAt ? read / elapsed : 0;
  const peak = isLive ? live.peakBytesPerSecond : disk.speed.peak;
  // ETA from the windowed speed, else the Transporter's (a restore's includes the verify pass, whose speed only it measures).
  const eta = isLive ? liveEta(live, windowSpeed) : null;
  const transport = live?.transport ?? disk.transport;
  // A disk left mid-copy by a VM that has ended (cancelled, failed) ended with it.
  const phase = !running && vmStatus !== 'queued' && !disk.finishedAt && IN_FLIGHT.has(disk.phase) ? vmStatus : isLive ? live.phase : disk.phase;
  // Live: the latest tick's busy fractions; afterwards (or after a reload): the last ones the Transporter recorded.
  const busy = isLive ? live.bottleneck : disk.bottleneck;
  // The fastest mode was reached (Direct SAN, or HotAdd, the fastest a restore writes with): why is there on request.
  // A slower one means a faster one was skipped: why is shown.
  const fastest = transport === 'san' || transport === 'hotadd';
  const progress = diskProgress(disk, { read, skipped, written: stored, verified: verifiedBytes }, restore);
  return (
    <div className="run-disk" data-testid="run-disk">
      <details open>
        <summary className="row small">
          <span>
            <strong>{disk.label}</strong> <span className="muted">{formatBytes(disk.capacityBytes)}</span> ·{' '}
            <span data-testid="disk-transport">{transportLabel(transport)}</span>
            {disk.cbtUsed && <span className="muted"> · CBT</span>}
            {disk.readMode && <span className="muted"> · {disk.readMode === 'changed' ? 'incremental' : 'full read'}</span>} <span className="muted">· {phase}</span>
          </span>
          <span className="muted">
            {restore ? `written ${formatBytes(stored)} · zeros skipped ${formatBytes(skipped)}` : `read ${formatBytes(read)} · skipped ${formatBytes(skipped)} · stored ${formatBytes(stored)}`}
            {speed > 0 && <span data-testid="disk-speed">{` · ${formatBytes(speed)}/s${peak > speed ? ` (peak ${formatBytes(peak)}/s)` : ''}`}</span>}
            {restore && verifiedBytes > 0 && <span data-testid="disk-read-back">{` · read back ${formatBytes(verifiedBytes)} of ${formatBytes(disk.capacityBytes)}`}</span>}
            {isLive && eta !== null && <span data-testid="disk-eta">{` · ${formatDuration(eta)} left`}</span>}
          </span>
        </summary>
        <div className="run-disk-body">
          {/* Backup: progress over what has to be read (unallocated or unchanged areas are skipped). Restore: over the
              whole disk, zeros included, written and then read back whole. */}
          <ProgressBar {...progress} label={`${disk.label} progress`} />
          {restore && phase === 'verifying' && <p className="small muted">Reading the written disk back to compare its SHA-256 with the restore point…</p>}
          {/* Only once some time was measured and data moved: before that there is no bottleneck to name. */}
          {detailed && showsBottleneck(busy, { read, written: stored }) && (
            <p className="small muted" data-testid="bottleneck">
              Bottleneck: <strong>{bottleneckOf(busy, restore)}</strong> —{' '}
              {restore
                ? `busy reading the restore point ${pct(busy.source)}, processing ${pct(busy.processing)}, writing the disk ${pct(busy.target)}`
                : `busy reading the source ${pct(busy.source)}, processing ${pct(busy.processing)}, writing to the repository ${pct(busy.target)}`}
            </p>
          )}
          {verified && (
            <p className="small verified" data-testid="disk-verified">
              <span aria-hidden="true">✓ </span>
              {verified}
            </p>
          )}
          {disk.error && <p className="reason">{disk.error}</p>}
          {disk.transportReason.length > 0 && (
            <details className="small transport-why" data-testid="transport-why" open={!fastest}>
              <summary className="muted">Why {transportLabel(transport)}</summary>
              <ul className="reasons muted" aria-label={`transport reasons for ${disk.label}`}>
                {disk.transportReason.map((r, i) => (
                  <li key={i}>{r}</li>
                ))}
              </ul>
            </details>
          )}
        </div>
      </details>
    </div>
  );
}
