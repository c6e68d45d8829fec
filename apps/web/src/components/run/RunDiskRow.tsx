import { useRef } from 'react';
import type { Bottleneck, DiskProgress, Run, RunStatus } from '@vaultline/contracts';
import { formatBytes, formatDuration, secondsBetween } from '../../lib/format.ts';
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

/** Seconds of live ticks the current speed is averaged over. */
const SPEED_WINDOW_S = 10;

/**
 * The read speed over the last SPEED_WINDOW_S seconds of live ticks (the tick's own figure is the average since the
 * disk started, which lags behind a change, and a single interval jumps about); null until a second is covered.
 */
function useWindowSpeed(live: DiskProgress | undefined): number | null {
  const ticks = useRef<{ t: number; read: number }[]>([]);
  if (live && ticks.current.at(-1)?.read !== live.bytesRead) {
    const now = Date.now();
    ticks.current.push({ t: now, read: live.bytesRead });
    // Keep one tick older than the window, so the window is always covered once it can be.
    while (ticks.current.length > 2 && ticks.current[1]!.t <= now - SPEED_WINDOW_S * 1000) ticks.current.shift();
  }
  const first = ticks.current[0];
  const last = ticks.current.at(-1);
  if (!first || !last || last.t - first.t < 1000) return null;
  return ((last.read - first.read) * 1000) / (last.t - first.t);
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
  // ETA from the windowed speed (what is left to read: the disk less what was read or skipped), else the Transporter's;
  // a restore's includes the verify pass, whose speed only the Transporter measures.
  const eta = isLive ? (windowSpeed && windowSpeed > 0 && live.verifyTotal === 0 ? Math.round(Math.max(0, live.bytesTotal - read - skipped) / windowSpeed) : live.etaSeconds) : null;
  const transport = live?.transport ?? disk.transport;
  // A disk left mid-copy by a VM that has ended (cancelled, failed) ended with it.
  const phase = !running && vmStatus !== 'queued' && !disk.finishedAt && IN_FLIGHT.has(disk.phase) ? vmStatus : isLive ? live.phase : disk.phase;
  // Live: the latest tick's busy fractions; afterwards (or after a reload): the last ones the Transporter recorded.
  const busy = isLive ? live.bottleneck : disk.bottleneck;
  // The fastest mode was reached (Direct SAN, or HotAdd, the fastest a restore writes with): why is there on request.
  // A slower one means a faster one was skipped: why is shown.
  const fastest = transport === 'san' || transport === 'hotadd';
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
          {restore ? (
            <ProgressBar done={disk.finishedAt ? 1 : stored + skipped + verifiedBytes} total={disk.finishedAt ? 1 : 2 * disk.capacityBytes} label={`${disk.label} progress`} />
          ) : (
            <ProgressBar done={disk.finishedAt ? 1 : read} total={disk.finishedAt ? 1 : Math.max(read, disk.capacityBytes - skipped)} label={`${disk.label} progress`} />
          )}
          {restore && phase === 'verifying' && <p className="small muted">Reading the written disk back to compare its SHA-256 with the restore point…</p>}
          {/* Only once some time was measured: before the first data there is no bottleneck to name. */}
          {detailed && busy && busy.source + busy.processing + busy.target > 0 && (
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
