/**
 * The sweep: undoes the browse sessions of dead Directors of this host from
 * the journal (rows whose owner process — pid and start time — is gone; and,
 * when `live` is given, our own sessions that are no longer open, i.e. whose
 * teardown failed part-way), and
 * whatever the mount table and loop list show under those sessions'
 * directories even without a row (a crash between acting and recording).
 * Order: filesystem mounts, loop devices, nbdfuse mounts (nbdfuse exits), NBD
 * server processes, directories. A row is resolved only after its undo
 * succeeded; one that fails stays for the next sweep and is counted.
 *
 * Nothing a row names is trusted (journal-trust.ts): the journal hands out
 * only rows whose MAC verifies, and before acting every path is resolved and
 * must lie under the FLR root (`root`), loop devices must be /dev/loopN, and a
 * process is signalled only when its command line is the one we started. A row
 * that fails a check is refused (reported once), never retried.
 */
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { deviceMatching, DEVICE_PATTERNS, JournalTrustError, pathUnder } from '@vaultline/appliance';
import type { Logger } from '@vaultline/logger';
import type { FlrJournal, FlrJournalRow } from './journal.ts';
import { detachLoops, isNbdServerFor, loopDevices, mountsUnder, removeDir, stopNbdfuse, stopProcess, unmount } from './layers.ts';
import { processAlive, type Owner } from './system.ts';

export interface SweepReport {
  sessions: number;
  unmounted: string[];
  loopsDetached: string[];
  fuseUnmounted: string[];
  serversStopped: number;
  failures: string[];
  /** Rows refused (not acted on), with why. */
  refused: string[];
}

const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);

export async function sweep(deps: { journal: FlrJournal; log: Logger; self: Owner; root: string; live?: Set<string> }): Promise<SweepReport> {
  const report: SweepReport = { sessions: 0, unmounted: [], loopsDetached: [], fuseUnmounted: [], serversStopped: 0, failures: [], refused: [] };
  /** `p` resolved under the FLR root; throws JournalTrustError (the row is refused) otherwise. */
  const underRoot = (p: unknown, what: string) => pathUnder(p, deps.root, what);
  const rows = await deps.journal.pending(deps.self.host);
  const bySession = new Map<string, FlrJournalRow[]>();
  for (const r of rows) bySession.set(r.sessionId, [...(bySession.get(r.sessionId) ?? []), r]);

  for (const [sessionId, group] of bySession) {
    const owner = group[0]!.owner;
    const ours = owner.pid === deps.self.pid && owner.start === deps.self.start;
    if (ours && (!deps.live || deps.live.has(sessionId))) continue; // a session of ours that is open (or opening)
    if (!ours && (await processAlive(owner.pid, owner.start))) continue; // another live Director on this host
    report.sessions++;
    const of = (layer: FlrJournalRow['layer']) => group.filter((r) => r.layer === layer);
    const attempt = async (row: FlrJournalRow | null, what: string, undo: () => Promise<void>): Promise<boolean> => {
      try {
        await undo();
        if (row) await deps.journal.resolve(row.id);
        return true;
      } catch (err) {
        const message = `session ${sessionId} ${what}: ${(err as Error).message}`;
        if (err instanceof JournalTrustError) {
          report.refused.push(message);
          if (row) await deps.journal.refuse(row.id, err.message).catch(() => undefined);
          return false;
        }
        report.failures.push(message);
        if (row) await deps.journal.failed(row.id, (err as Error).message).catch(() => undefined);
        return false;
      }
    };
    // The session's directory, when it is one under the root (else only the rows' own, checked, paths are undone).
    let dir: string | null = null;
    const dirRow = of('session')[0] ?? null;
    const claimed = str(dirRow?.target.dir) ?? commonDir(group);
    if (claimed) {
      try {
        dir = await underRoot(claimed, 'session folder');
      } catch (err) {
        if (!(err instanceof JournalTrustError)) throw err;
        report.refused.push(`session ${sessionId}: ${err.message}`);
        if (dirRow) await deps.journal.refuse(dirRow.id, err.message).catch(() => undefined);
      }
    }

    // 1. Filesystem mounts (the rows', and any other mount under <dir>/mnt).
    const mountRows = of('mount');
    const extra = dir ? (await mountsUnder(path.join(dir, 'mnt'))).map((m) => m.mountPoint).filter((mp) => !mountRows.some((r) => r.target.mountPoint === mp)) : [];
    for (const mp of extra) {
      if (await attempt(null, `unmounting ${mp}`, () => unmount(mp))) report.unmounted.push(mp);
    }
    for (const r of mountRows) {
      const claimedMp = str(r.target.mountPoint);
      if (!claimedMp) continue;
      let was = false;
      if (await attempt(r, `unmounting ${claimedMp}`, async () => {
        const mp = await underRoot(claimedMp, 'mount point');
        // What was mounted there is one of our read-only loop devices; a row naming anything else is not ours.
        if (r.target.device !== undefined) await deviceMatching(r.target.device, DEVICE_PATTERNS.loop, 'mounted device');
        was = (await mountsUnder(mp)).length > 0;
        await unmount(mp);
        await removeDir(mp);
      }) && was) report.unmounted.push(claimedMp);
    }

    // 2. Loop devices backed by this session's nbdfuse files.
    const loopRows = of('loop');
    for (const r of loopRows) {
      const file = str(r.target.backingFile);
      if (!file) continue;
      await attempt(r, `detaching the loop device on ${file}`, async () => {
        await underRoot(file, 'loop backing file');
        report.loopsDetached.push(...(await detachLoops(file, typeof r.target.offset === 'number' ? r.target.offset : undefined)));
      });
    }
    if (dir) {
      for (const l of await loopDevices().catch(() => [])) {
        if (!l.backingFile.startsWith(`${dir}/`)) continue;
        await attempt(null, `detaching ${l.device}`, async () => {
          report.loopsDetached.push(...(await detachLoops(l.backingFile, l.offset)));
        });
      }
    }

    // 3. nbdfuse mounts (nbdfuse exits once unmounted).
    for (const r of of('fuse')) {
      const mp = str(r.target.mountPoint);
      if (!mp) continue;
      let was = false;
      if (await attempt(r, `unmounting the disk file at ${mp}`, async () => {
        const real = await underRoot(mp, 'disk file mount point');
        was = (await mountsUnder(real)).length > 0;
        // nbdfuse is signalled only when its command line is the one started for this mount point.
        await stopNbdfuse(real, num(r.target.pid) ?? undefined, str(r.target.start) ?? undefined);
        await removeDir(real);
      }) && was) report.fuseUnmounted.push(mp);
    }
    if (dir) {
      for (const m of await mountsUnder(dir)) {
        if (await attempt(null, `unmounting ${m.mountPoint}`, () => stopNbdfuse(m.mountPoint))) report.fuseUnmounted.push(m.mountPoint);
      }
    }

    // 4. NBD server processes (they exit with their Director; this is for one that did not).
    for (const r of of('nbd_server')) {
      const socket = str(r.target.socket);
      const pid = num(r.target.pid);
      const start = str(r.target.start);
      await attempt(r, 'stopping the NBD server', async () => {
        if (!socket) return;
        const real = await underRoot(socket, 'NBD socket');
        // Only the server process started for this socket (our entry point, the socket as its argument).
        if (pid && start && (await stopProcess(pid, start, (argv) => isNbdServerFor(argv, socket)))) report.serversStopped++;
        await unlink(real).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      });
    }

    // 5. The session's directories (only empty ones; never a recursive delete).
    for (const r of of('session')) {
      const d = dir;
      if (!d) continue;
      await attempt(r, `removing ${d}`, async () => {
        await removeDir(path.join(d, 'mnt'));
        await removeDir(d);
      });
    }
  }
  if (report.sessions) deps.log.info({ ...report }, 'file restore: swept what a stopped Director left behind');
  if (report.refused.length) deps.log.error({ refused: report.refused }, 'file restore: the sweep refused journal rows naming what is not ours; nothing was done for them (reported to the operator)');
  if (report.failures.length) deps.log.error({ failures: report.failures }, 'file restore: some leftovers could not be removed; the next start retries');
  return report;
}

function commonDir(rows: FlrJournalRow[]): string | null {
  for (const r of rows) {
    const p = str(r.target.mountPoint) ?? str(r.target.socket) ?? str(r.target.backingFile);
    if (p) {
      const m = /^(.*\/[0-9a-f-]{36})\//.exec(p);
      if (m) return m[1]!;
    }
  }
  return null;
}
