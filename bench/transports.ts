/**
 * Transport benchmark (a script that prints figures, never a test).
 *
 *   npm run bench -- transports [--size-gib 2] [--rounds 2] [--seed N]
 *
 * Against the lab vCenter (HTTPS, plus a second lab serving plain HTTP for NBD),
 * in one run: makes a VM with one thin disk (~65% allocated with seeded random
 * data in 1..12 MiB extents, the rest holes), then per round:
 *  - a full backup through each transport the machine supports (nbdssl, nbd,
 *    hotadd, san), each into a fresh repository, through the Transporter's real
 *    backup handler (apps/transporter/test/fixture.ts), and the raw source speed
 *    of that transport: curl Range GETs of the flat file from /folder (1 stream
 *    and the product's nbd streams in parallel), dd iflag=direct from a loop
 *    device of the flat file (HotAdd) or of the file's extents on the LUN (SAN);
 *  - an incremental over nbdssl after ~5% of the disk changed in scattered
 *    64 KiB..1 MiB pieces, against curl reading the same changed ranges;
 *  - a restore of the point to a new VM through each write transport (nbdssl,
 *    nbd, hotadd), against curl PUT / dd oflag=direct of the same byte count;
 *  - the product's own /folder reader alone (files.readRange, 1 MiB and 4 MiB
 *    ranges, nbd streams in flight) to split NBD time between fetch and pipeline.
 * Prints a table, goals pass/fail (not asserted) and writes bench/transports.json.
 * External commands run in bench/runner.mjs (see there: this process never forks).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { identityColumns } from '@vaultline/appliance';
import { Repository } from '@vaultline/repository';
import type { VSphereClient } from '@vaultline/vsphere';
import { isRoot, startBench, type Bench } from '../apps/transporter/test/fixture.ts';
import { arg, commandRunner, median, rng, type Step } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const work = path.join(here, 'work', 'transports');
const MiB = 1024 * 1024;
const KiB64 = 64 * 1024;
const SIZE = Math.round((Number(arg('size-gib', '2')) * 1024 ** 3) / MiB) * MiB;
const ROUNDS = Math.max(1, Number(arg('rounds', '2')));
const SEED = Number(arg('seed', '20261206'));
/** The fixture's connector setting (createVSphereConnector nbdStreamsPerHost). */
const NBD_STREAMS = 4;
const VM = 'benchsrc';

const round2 = (x: number) => Math.round(x * 100) / 100;

// ---- external commands (bench/runner.mjs) ------------------------------------
const { runAll, runner } = commandRunner();
async function run(cmd: string, cmdArgs: string[]): Promise<Step> {
  const [s] = await runAll([{ cmd, args: cmdArgs, stdout: true }]);
  if (!s || s.status !== 0) throw new Error(`${cmd} ${cmdArgs.slice(0, 6).join(' ')} failed: ${s?.error ?? `exit ${s?.status}`} ${s?.stderr ?? ''}`);
  return s;
}
async function has(bin: string): Promise<boolean> {
  return (await runAll([{ cmd: 'which', args: [bin], mayFail: true }]))[0]!.status === 0;
}

// ---- disk layout ---------------------------------------------------------------
type Extent = [number, number];

/** Allocated extents of 1..12 MiB and holes of 0.5..6.5 MiB (64 KiB aligned): ~65% allocated. */
function layout(size: number, seed: number): Extent[] {
  const r = rng(seed);
  const out: Extent[] = [];
  let off = Math.floor(r() * 8) * KiB64;
  while (off < size) {
    const len = Math.min(size - off, (16 + Math.floor(r() * 177)) * KiB64);
    out.push([off, len]);
    off += len + (8 + Math.floor(r() * 97)) * KiB64;
  }
  return out;
}

/** ~5% of the disk in 64 KiB..1 MiB pieces, inside allocated extents (the allocation stays the same). */
function changes(allocated: Extent[], size: number, seed: number): Extent[] {
  const r = rng(seed);
  const want = size * 0.05;
  const picked = new Map<number, number>();
  let total = 0;
  for (let guard = 0; total < want && guard < 100_000; guard++) {
    const [eo, el] = allocated[Math.floor(r() * allocated.length)]!;
    const len = Math.min(el, (1 + Math.floor(r() * 16)) * KiB64);
    const start = eo + Math.floor(r() * ((el - len) / KiB64 + 1)) * KiB64;
    if (picked.has(start)) continue;
    picked.set(start, len);
    total += len;
  }
  return merge([...picked.entries()]);
}

function merge(xs: Extent[]): Extent[] {
  const s = [...xs].sort((a, b) => a[0] - b[0]);
  const out: Extent[] = [];
  for (const [o, l] of s) {
    const last = out.at(-1);
    if (last && o <= last[0] + last[1]) last[1] = Math.max(last[1], o + l - last[0]);
    else out.push([o, l]);
  }
  return out;
}
const bytesOf = (xs: Extent[]) => xs.reduce((a, [, l]) => a + l, 0);

/** Splits extents into `n` lists of about equal bytes (whole extents, in offset order per list). */
function split(xs: Extent[], n: number): Extent[][] {
  const lists: Extent[][] = Array.from({ length: n }, () => []);
  const sums = new Array<number>(n).fill(0);
  for (const e of [...xs].sort((a, b) => b[1] - a[1])) {
    const i = sums.indexOf(Math.min(...sums));
    lists[i]!.push(e);
    sums[i]! += e[1];
  }
  return lists.map((l) => l.sort((a, b) => a[0] - b[0]));
}

// ---- measuring a step in this process -------------------------------------------
interface Measured {
  seconds: number;
  cpuSeconds: number;
  labCpuSeconds: number;
  peakRssMiB: number;
  baseRssMiB: number;
  /** Peak RSS during the step minus RSS before it: what the step itself needed. */
  rssGrowthMiB: number;
  loopDelayMaxMs: number;
  loopDelayP99Ms: number;
}
function procCpu(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
async function measure(labPid: number, fn: () => Promise<void>): Promise<Measured> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const lab0 = procCpu(labPid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
    h.disable();
  }
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  peak = Math.max(peak, process.memoryUsage.rss());
  return {
    seconds,
    cpuSeconds: (c.user + c.system) / 1e6,
    labCpuSeconds: procCpu(labPid) - lab0,
    peakRssMiB: peak / MiB,
    baseRssMiB: base / MiB,
    rssGrowthMiB: (peak - base) / MiB,
    loopDelayMaxMs: h.max / 1e6,
    loopDelayP99Ms: h.percentile(99) / 1e6,
  };
}

// ---- one lab ------------------------------------------------------------------------
interface Site {
  name: 'https' | 'http';
  b: Bench;
  client: VSphereClient;
  file: { datacenter: string; datastore: string; path: string };
  flatPath: string;
  folderUrl: string;
  dsPath: string;
  lunDevice: string | undefined;
}

/** Every bench started, closed at the end whatever happened (lab processes, loop devices, mounts, database). */
const benches: Bench[] = [];
const sessions: Array<() => Promise<void>> = [];

async function openSite(name: 'https' | 'http', allocated: Extent[]): Promise<Site> {
  const b = await startBench(name === 'http' ? { lab: { http: true } } : {});
  benches.push(b);
  await b.lab.createVm({ name: VM, cbt: true, disks: [{ capacityBytes: SIZE, thin: true }] });
  const t0 = performance.now();
  // The guest writes the data (through the lab, so the change log knows it); 8 MiB per write.
  await b.lab.guestWrite(
    VM,
    0,
    allocated.map(([offset, length]) => ({ offset, length, pattern: 'random' as const, seed: SEED })),
  );
  console.log(`${name} lab: wrote ${(bytesOf(allocated) / MiB).toFixed(0)} MiB of guest data in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const vm = await b.lab.getVm(VM);
  const disk = vm.disks[0]!;
  const m = /^\[([^\]]+)\] (.*)\.vmdk$/.exec(disk.fileName);
  if (!m) throw new Error(`unexpected disk file name ${disk.fileName}`);
  const ds = b.lab.datastores.find((d) => d.name === m[1]);
  const session = await b.connector.restoreSession(await b.db.vCenter.findUniqueOrThrow({ where: { id: b.vcenterId } }));
  sessions.push(session.close);
  const file = { datacenter: b.lab.datacenter, datastore: m[1]!, path: `${m[2]}-flat.vmdk` };
  return {
    name,
    b,
    client: session.client,
    file,
    flatPath: disk.flatPath,
    folderUrl: session.client.files.url(file),
    dsPath: ds?.path ?? path.dirname(path.dirname(disk.flatPath)),
    lunDevice: ds?.lunDevice,
  };
}

async function freshRepository(b: Bench, tag: string): Promise<{ id: string; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vaultline-bench-transports-${tag}-`));
  const identity = await Repository.init(dir, {});
  const row = await b.db.repository.create({
    data: { name: `bench-${tag}-${randomUUID().slice(0, 8)}`, kind: 'local', location: dir, encrypted: false, passphraseSealed: null, ...identityColumns(identity) },
  });
  return { id: row.id, dir };
}

interface BackupResult extends Measured {
  transport: string;
  bytesRead: number;
  mibS: number;
  /** The disk's own time (run_disk started..finished): the VM's snapshot, preflight and commit are outside it. */
  diskSeconds: number;
  /** Shares of the disk's busy time the Transporter reports (its progress events' `bottleneck`). */
  busySource: number;
  busyProcessing: number;
  busyTarget: number;
  pointRowId: string;
  cbtUsed: boolean;
}
async function backup(site: Site, mode: 'nbdssl' | 'nbd' | 'hotadd' | 'san', repositoryId: string): Promise<BackupResult> {
  const { b } = site;
  const { runId } = await b.newRun([VM], mode);
  const runRow = await b.db.jobRun.findUniqueOrThrow({ where: { id: runId } });
  await b.db.backupJob.update({ where: { id: runRow.jobId! }, data: { repositoryId } });
  const seen = b.events.length;
  const m = await measure(b.lab.pid, () => b.runAll(runId));
  // The Transporter's own split of the disk's busy time (source reads / processing / repository writes), from its last progress event.
  const bottleneck = b.events
    .slice(seen)
    .map((e) => e.bottleneck as { source: number; processing: number; target: number } | undefined)
    .filter((x) => x !== undefined)
    .at(-1);
  const item = await b.db.runVm.findFirstOrThrow({ where: { runId } });
  if (item.status !== 'succeeded') throw new Error(`backup over ${mode} ended ${item.status}: ${item.error ?? ''}`);
  const disk = await b.db.runDisk.findFirstOrThrow({ where: { runVmId: item.id } });
  printTimeline(`${mode} backup`, m.seconds, item, disk);
  const point = await b.db.restorePoint.findFirstOrThrow({ where: { runVmId: item.id } });
  const bytesRead = Number(disk.bytesRead ?? 0n);
  const diskSeconds = disk.startedAt && disk.finishedAt ? (disk.finishedAt.getTime() - disk.startedAt.getTime()) / 1000 : NaN;
  return {
    ...m,
    transport: disk.transport ?? '?',
    bytesRead,
    mibS: bytesRead / MiB / m.seconds,
    diskSeconds,
    busySource: bottleneck?.source ?? NaN,
    busyProcessing: bottleneck?.processing ?? NaN,
    busyTarget: bottleneck?.target ?? NaN,
    pointRowId: point.id, cbtUsed: Boolean(disk.cbtUsed) };
}

/** Where a VM's time went: its log lines and the disk's start and end, in seconds from the VM's start. */
function printTimeline(
  what: string,
  stepSeconds: number,
  item: { startedAt: Date | null; finishedAt: Date | null; log: unknown },
  disk: { startedAt: Date | null; finishedAt: Date | null },
): void {
  const t0 = (item.startedAt ?? disk.startedAt ?? new Date()).getTime();
  const marks = [
    ...(item.log as { at: string; message: string }[]).map((l) => ({ at: Date.parse(l.at), what: l.message.slice(0, 72) })),
    ...(disk.startedAt ? [{ at: disk.startedAt.getTime(), what: 'disk started' }] : []),
    ...(disk.finishedAt ? [{ at: disk.finishedAt.getTime(), what: 'disk finished' }] : []),
    ...(item.finishedAt ? [{ at: item.finishedAt.getTime(), what: 'VM finished' }] : []),
  ].sort((x, y) => x.at - y.at);
  console.log(`  timeline ${what} (s from the VM's start; whole step ${stepSeconds.toFixed(2)} s): ${marks.map((x) => `+${((x.at - t0) / 1000).toFixed(2)} ${x.what}`).join(' | ')}`);
}

interface RestoreResult extends Measured {
  transport: string;
  bytesWritten: number;
  mibS: number;
  diskSeconds: number;
  /** The write before the verifying read-back (from the run log, to a tenth of a second). */
  writeSeconds: number;
}
async function restore(site: Site, pointRowId: string, mode: 'nbdssl' | 'nbd' | 'hotadd', name: string): Promise<RestoreResult> {
  const { b } = site;
  const { runVmId } = await b.newRestoreRun({ restorePointId: pointRowId, name, transport: mode, powerOn: false, failoverToNetwork: false });
  const m = await measure(b.lab.pid, () => b.restoreHandler({ runVmId }, { attempt: 1 }).catch(() => undefined));
  const item = await b.db.runVm.findUniqueOrThrow({ where: { id: runVmId } });
  if (item.status !== 'succeeded') throw new Error(`restore over ${mode} ended ${item.status}: ${item.error ?? ''}`);
  const disk = await b.db.runDisk.findFirstOrThrow({ where: { runVmId } });
  printTimeline(`${mode} restore`, m.seconds, item, disk);
  // The write alone (before the read-back that verifies it), as the run log states it.
  const wrote = (item.log as { message: string }[]).map((l) => /: wrote \d+ bytes.* in ([\d.]+) s; read back/.exec(l.message)).find(Boolean);
  const writeSeconds = wrote ? Number(wrote[1]) : NaN;
  const bytesWritten = Number(disk.bytesWritten ?? 0n);
  const diskSeconds = disk.startedAt && disk.finishedAt ? (disk.finishedAt.getTime() - disk.startedAt.getTime()) / 1000 : NaN;
  return { ...m, transport: disk.transport ?? '?', bytesWritten, mibS: bytesWritten / MiB / m.seconds, diskSeconds, writeSeconds };
}

// ---- raw paths ---------------------------------------------------------------------
let fileSeq = 0;
function curlConfig(url: string, xs: Extent[]): string {
  const f = path.join(work, `curl-${process.pid}-${++fileSeq}.cfg`);
  const blocks = xs.map(([o, l]) => `url = "${url}"\nrange = "${o}-${o + l - 1}"\noutput = "/dev/null"\ninsecure\nsilent\nshow-error\nfail\nwrite-out = "%{size_download}\\n"\n`);
  fs.writeFileSync(f, blocks.join('next\n'));
  return f;
}

/** curl Range GETs of `xs` from `url`, in `streams` parallel curl processes (each one keep-alive connection). */
async function curlRead(url: string, xs: Extent[], streams: number): Promise<{ seconds: number; mibS: number; streams: number }> {
  const lists = split(xs, streams).filter((l) => l.length > 0);
  const cfgs = lists.map((l) => curlConfig(url, l));
  const script = `${cfgs.map((c) => `curl -K '${c}' &`).join('\n')}\nfail=0\nfor j in $(jobs -p); do wait $j || fail=1; done\nexit $fail\n`;
  const s = await run('bash', ['-c', script]);
  const got = s.stdout
    .split('\n')
    .filter(Boolean)
    .reduce((a, x) => a + Number(x), 0);
  if (got !== bytesOf(xs)) throw new Error(`curl read ${got} bytes, wanted ${bytesOf(xs)}`);
  for (const c of cfgs) fs.rmSync(c, { force: true });
  return { seconds: s.seconds, mibS: got / MiB / s.seconds, streams: lists.length };
}

/** curl PUT of `bytes` bytes to a new datastore file: the file `src` itself when it has that size, else a prefix of it. */
async function curlPut(url: string, src: string, bytes: number): Promise<{ seconds: number; mibS: number }> {
  const s =
    fs.statSync(src).size === bytes
      ? await run('curl', ['-k', '-sS', '--fail', '-T', src, url])
      : await run('bash', ['-c', `head -c ${bytes} '${src}' > '${src}.put' && exec curl -k -sS --fail -T '${src}.put' '${url}'`]);
  fs.rmSync(`${src}.put`, { force: true });
  return { seconds: s.seconds, mibS: bytes / MiB / s.seconds };
}

/**
 * dd of each extent (one dd per extent, bs=4M, O_DIRECT); the time is the sum of
 * dd's own "copied, X s" (so process starts are not charged); `wall` includes them.
 */
async function ddExtents(kind: 'read' | 'write', dev: string, src: string, xs: Array<{ from: number; to: number; len: number }>): Promise<{ seconds: number; wall: number; mibS: number }> {
  const log = path.join(work, `dd-${process.pid}-${++fileSeq}.log`);
  const lines = xs.map(({ from, to, len }) =>
    kind === 'read'
      ? `dd if='${dev}' of=/dev/null bs=4M iflag=direct,skip_bytes,count_bytes skip=${from} count=${len}`
      : `dd if='${src}' of='${dev}' bs=4M iflag=direct,skip_bytes,count_bytes oflag=direct,seek_bytes conv=notrunc skip=${from} seek=${to} count=${len}`,
  );
  const scriptFile = path.join(work, `dd-${process.pid}-${fileSeq}.sh`);
  fs.writeFileSync(scriptFile, `set -e\nexec 2>'${log}'\n${lines.join('\n')}\n`);
  const s = await run('bash', [scriptFile]);
  const text = fs.readFileSync(log, 'utf8');
  const secs = [...text.matchAll(/copied, ([0-9.e-]+) s/g)].map((m) => Number(m[1]));
  const copied = [...text.matchAll(/^(\d+) bytes/gm)].reduce((a, m) => a + Number(m[1]), 0);
  const want = xs.reduce((a, x) => a + x.len, 0);
  if (copied !== want) throw new Error(`dd copied ${copied} bytes, wanted ${want}`);
  fs.rmSync(log, { force: true });
  fs.rmSync(scriptFile, { force: true });
  const seconds = secs.reduce((a, x) => a + x, 0);
  return { seconds, wall: s.seconds, mibS: want / MiB / seconds };
}

const myLoops: string[] = [];
async function losetup(file: string, readOnly: boolean): Promise<string> {
  const dev = (await run('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), file])).stdout.trim();
  myLoops.push(dev);
  return dev;
}
async function detach(dev: string): Promise<void> {
  await runAll([{ cmd: 'losetup', args: ['-d', dev], mayFail: true }]);
  myLoops.splice(myLoops.indexOf(dev), 1);
}

/** The physical extents (on the LUN) of a file on the mounted ext4 datastore, via filefrag. */
async function physicalExtents(file: string): Promise<Array<{ from: number; to: number; len: number }>> {
  const out = (await run('filefrag', ['-v', file])).stdout;
  const bs = Number(/blocks of (\d+) bytes/.exec(out)?.[1] ?? '4096');
  const xs: Array<{ from: number; to: number; len: number }> = [];
  for (const m of out.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):/gm)) xs.push({ from: Number(m[2]) * bs, to: 0, len: Number(m[3]) * bs });
  return xs;
}

/** TCP sockets to or from the lab's port (any state, TIME-WAIT included): new connections show up as new sockets. */
async function sockets(site: Site): Promise<number> {
  const port = new URL(site.folderUrl).port;
  const s = await run('ss', ['-Htan', `( dport = :${port} or sport = :${port} )`]);
  return new Set(s.stdout.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).slice(3, 5).sort().join(' '))).size;
}

/** The product's network reader alone: files.readRange of `rangeBytes` with `streams` in flight, as NetworkReader does, no pipeline. */
async function nodeRead(site: Site, xs: Extent[], rangeBytes: number, streams: number): Promise<Measured & { mibS: number }> {
  const parts: Extent[] = [];
  for (const [o, l] of xs) for (let p = 0; p < l; p += rangeBytes) parts.push([o + p, Math.min(rangeBytes, l - p)]);
  const out = Buffer.allocUnsafe(rangeBytes);
  const m = await measure(site.b.lab.pid, async () => {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < parts.length; i = next++) {
        const [o, l] = parts[i]!;
        const data = await site.client.files.readRange(site.file, o, l);
        data.copy(out, 0);
      }
    };
    await Promise.all(Array.from({ length: streams }, worker));
  });
  return { ...m, mibS: bytesOf(xs) / MiB / m.seconds };
}

// ---- main ---------------------------------------------------------------------------
type Mode = 'nbdssl' | 'nbd' | 'hotadd' | 'san';
interface Row {
  what: string;
  mode: string;
  rounds: Array<Record<string, number | string | boolean>>;
}

async function main(): Promise<void> {
  fs.mkdirSync(work, { recursive: true });
  const allocated = layout(SIZE, SEED);
  const allocBytes = bytesOf(allocated);
  const loadStart = os.loadavg();
  const startedAt = new Date().toISOString();
  console.log(
    `transport bench: disk ${(SIZE / MiB).toFixed(0)} MiB, ${(allocBytes / MiB).toFixed(0)} MiB allocated (${((100 * allocBytes) / SIZE).toFixed(1)}%) in ${allocated.length} extents; ${ROUNDS} rounds; nbd streams ${NBD_STREAMS}; load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`,
  );
  const skipped: Record<string, string> = {};
  if (!(await has('curl'))) throw new Error('curl is missing (apt-get install curl)');
  if (!isRoot) {
    skipped.hotadd = 'HotAdd needs root (the lab attaches the disk as a loop device)';
    skipped.san = 'SAN needs root (the lab LUNs are loop devices of ext4 images)';
  }
  const repoDirs: string[] = [];
  const results: Row[] = [];
  const row = (what: string, mode: string): Row => {
    let r = results.find((x) => x.what === what && x.mode === mode);
    if (!r) results.push((r = { what, mode, rounds: [] }));
    return r;
  };
  try {
    const https = await openSite('https', allocated);
    let http: Site | null = null;
    try {
      http = await openSite('http', allocated);
    } catch (err) {
      skipped.nbd = `a lab serving plain HTTP did not start: ${(err as Error).message}`;
    }
    if (isRoot && !https.lunDevice) skipped.san = 'the lab datastore holding the disk has no LUN';
    const modes: Mode[] = (['nbdssl', 'nbd', 'hotadd', 'san'] as const).filter((m) => !skipped[m]);
    for (const [m, why] of Object.entries(skipped)) console.log(`skip ${m}: ${why}`);
    const siteOf = (m: Mode) => (m === 'nbd' ? http! : https);

    for (let r = 0; r < ROUNDS; r++) {
      const order = modes.map((_, i) => modes[(i + r) % modes.length]!);
      console.log(`-- round ${r + 1}/${ROUNDS}: ${order.join(', ')}`);
      const points: Partial<Record<Mode, { rowId: string; repoDir: string; repoId: string }>> = {};
      for (const mode of order) {
        const site = siteOf(mode);
        // raw source speed of this transport, right before the product's backup
        let raw: Record<string, number> = {};
        if (mode === 'nbdssl' || mode === 'nbd') {
          const one = await curlRead(site.folderUrl, allocated, 1);
          const par = await curlRead(site.folderUrl, allocated, NBD_STREAMS);
          raw = { raw1_mib_s: one.mibS, rawN_mib_s: par.mibS, raw_mib_s: Math.max(one.mibS, par.mibS) };
        } else if (mode === 'hotadd') {
          const dev = await losetup(site.flatPath, true);
          try {
            const dd = await ddExtents('read', dev, '', allocated.map(([o, l]) => ({ from: o, to: 0, len: l })));
            raw = { raw_mib_s: dd.mibS, raw_wall_s: dd.wall };
          } finally {
            await detach(dev);
          }
        } else {
          await run('sync', []);
          const xs = await physicalExtents(site.flatPath);
          const dd = await ddExtents('read', site.lunDevice!, '', xs);
          raw = { raw_mib_s: dd.mibS, raw_wall_s: dd.wall, lun_extents: xs.length };
        }
        const repo = await freshRepository(site.b, `${mode}-${r}`);
        repoDirs.push(repo.dir);
        try {
          const before = mode === 'nbdssl' || mode === 'nbd' ? await sockets(site) : 0;
          const res = await backup(site, mode, repo.id);
          if (mode === 'nbdssl' || mode === 'nbd') raw.new_sockets = (await sockets(site)) - before;
          const ok = res.transport === mode;
          console.log(
            `full ${mode}: ${res.seconds.toFixed(2)} s, ${res.mibS.toFixed(0)} MiB/s of ${(res.bytesRead / MiB).toFixed(0)} MiB (raw ${raw.raw_mib_s!.toFixed(0)} MiB/s), CPU ${res.cpuSeconds.toFixed(2)} s, lab CPU ${res.labCpuSeconds.toFixed(2)} s, peak RSS ${res.peakRssMiB.toFixed(0)} MiB${ok ? '' : ` — RAN AS ${res.transport}`}`,
          );
          if (!ok) throw new Error(`asked for ${mode}, the product used ${res.transport}`);
          row('full', mode).rounds.push({ ...res, ...raw, ratio: res.mibS / raw.raw_mib_s!, copy_ratio: res.bytesRead / MiB / res.diskSeconds / raw.raw_mib_s! });
          points[mode] = { rowId: res.pointRowId, repoDir: repo.dir, repoId: repo.id };
        } catch (err) {
          console.log(`full ${mode}: FAILED ${(err as Error).message}`);
          row('full', mode).rounds.push({ error: (err as Error).message });
        }
      }

      // incremental over nbdssl after ~5% changed
      if (points.nbdssl) {
        const ch = changes(allocated, SIZE, SEED + 1000 + r);
        await https.b.lab.guestWrite(VM, 0, ch.map(([offset, length]) => ({ offset, length, pattern: 'random' as const, seed: SEED + 77 + r })));
        const one = await curlRead(https.folderUrl, ch, 1);
        const par = await curlRead(https.folderUrl, ch, NBD_STREAMS);
        const raw = Math.max(one.mibS, par.mibS);
        try {
          const res = await backup(https, 'nbdssl', points.nbdssl.repoId);
          const mibS = bytesOf(ch) / MiB / res.seconds;
          console.log(
            `incremental nbdssl: ${res.seconds.toFixed(2)} s for ${(bytesOf(ch) / MiB).toFixed(0)} MiB changed in ${ch.length} areas (read ${(res.bytesRead / MiB).toFixed(0)} MiB, CBT ${res.cbtUsed}), ${mibS.toFixed(0)} MiB/s (raw ${raw.toFixed(0)}), CPU ${res.cpuSeconds.toFixed(2)} s`,
          );
          row('incremental', 'nbdssl').rounds.push({ ...res, changed_bytes: bytesOf(ch), areas: ch.length, mibS, raw1_mib_s: one.mibS, rawN_mib_s: par.mibS, raw_mib_s: raw, ratio: mibS / raw, copy_ratio: bytesOf(ch) / MiB / res.diskSeconds / raw });
        } catch (err) {
          console.log(`incremental nbdssl: FAILED ${(err as Error).message}`);
          row('incremental', 'nbdssl').rounds.push({ error: (err as Error).message });
        }
      }

      // the product's /folder reader alone (profiling NBD), on the https lab
      const variants: Array<[Site | null, string, number, number]> = [
        [https, 'nbdssl', 1, NBD_STREAMS],
        [https, 'nbdssl', 4, NBD_STREAMS],
        [https, 'nbdssl', 1, 1],
        // what the backup cycle asks for: one repository chunk (256 KiB) per read() call, one call at a time
        [https, 'nbdssl', 0.25, 1],
        [http, 'nbd', 1, NBD_STREAMS],
      ];
      for (const [site, mode, rangeMiB, streams] of variants) {
        if (!site) continue;
        const before = await sockets(site);
        const res = await nodeRead(site, allocated, rangeMiB * MiB, streams);
        const requests = allocated.reduce((a, [, l]) => a + Math.ceil(l / (rangeMiB * MiB)), 0);
        const newSockets = (await sockets(site)) - before;
        console.log(
          `reader only (files.readRange ${rangeMiB * 1024} KiB × ${streams}) ${mode}: ${res.mibS.toFixed(0)} MiB/s, ${requests} requests, ${newSockets} new sockets, CPU ${res.cpuSeconds.toFixed(2)} s (${((1000 * res.cpuSeconds) / (bytesOf(allocated) / MiB)).toFixed(2)} ms/MiB), lab CPU ${res.labCpuSeconds.toFixed(2)} s, event-loop delay max ${res.loopDelayMaxMs.toFixed(0)} ms`,
        );
        row(`reader ${rangeMiB * 1024} KiB x${streams}`, mode).rounds.push({ ...res, requests, newSockets, cpuMsPerMiB: (1000 * res.cpuSeconds) / (bytesOf(allocated) / MiB) });
      }

      // restores through each write transport, and the raw write path
      const restores: Array<['nbdssl' | 'nbd' | 'hotadd', Site, Mode]> = [];
      if (points.nbdssl) restores.push(['nbdssl', https, 'nbdssl']);
      if (points.nbd && http) restores.push(['nbd', http, 'nbd']);
      if (points.nbdssl && !skipped.hotadd) restores.push(['hotadd', https, 'nbdssl']);
      for (const [wmode, site, from] of restores) {
        try {
          const res = await restore(site, points[from]!.rowId, wmode, `restored-${wmode}-${r}`);
          let raw: Record<string, number>;
          if (wmode === 'hotadd') {
            // dd of the same bytes (the allocated extents, as HotAdd writes non-zero data) into a loop device of a new sparse file
            const target = path.join(path.dirname(site.flatPath), `raw-write-${r}.img`);
            fs.closeSync(fs.openSync(target, 'w'));
            fs.truncateSync(target, SIZE);
            const dev = await losetup(target, false);
            try {
              const dd = await ddExtents('write', dev, site.flatPath, allocated.map(([o, l]) => ({ from: o, to: o, len: l })));
              await run('sync', []);
              raw = { raw_mib_s: dd.mibS, raw_wall_s: dd.wall, raw_bytes: allocBytes };
            } finally {
              await detach(dev);
              fs.rmSync(target, { force: true });
            }
          } else {
            const f = { ...site.file, path: `${path.posix.dirname(site.file.path)}/raw-put-${r}.bin` };
            const put = await curlPut(site.client.files.url(f), site.flatPath, res.bytesWritten);
            raw = { raw_mib_s: put.mibS, raw_bytes: res.bytesWritten };
            fs.rmSync(path.join(path.dirname(site.flatPath), `raw-put-${r}.bin`), { force: true });
          }
          console.log(
            `restore ${wmode}: ${res.seconds.toFixed(2)} s, ${res.mibS.toFixed(0)} MiB/s of ${(res.bytesWritten / MiB).toFixed(0)} MiB written (raw ${raw.raw_mib_s!.toFixed(0)} MiB/s), CPU ${res.cpuSeconds.toFixed(2)} s, peak RSS ${res.peakRssMiB.toFixed(0)} MiB${res.transport === wmode ? '' : ` — RAN AS ${res.transport}`}`,
          );
          row('restore', wmode).rounds.push({ ...res, ...raw, ratio: res.mibS / raw.raw_mib_s!, copy_ratio: res.bytesWritten / MiB / res.diskSeconds / raw.raw_mib_s!, write_ratio: res.bytesWritten / MiB / res.writeSeconds / raw.raw_mib_s! });
        } catch (err) {
          console.log(`restore ${wmode}: FAILED ${(err as Error).message}`);
          row('restore', wmode).rounds.push({ error: (err as Error).message });
        }
      }
      for (const p of Object.values(points)) fs.rmSync(p.repoDir, { recursive: true, force: true });
    }
  } finally {
    for (const d of [...myLoops]) await detach(d);
    for (const close of sessions) await close().catch(() => undefined);
    for (const b of benches) await b.close().catch(() => undefined);
    for (const d of repoDirs) fs.rmSync(d, { recursive: true, force: true });
  }

  // ---- report ----
  const loadEnd = os.loadavg();
  const med = (r: Row, k: string) => median(r.rounds.map((x) => x[k]).filter((x): x is number => typeof x === 'number'));
  const goals: Array<{ goal: string; value: string; pass: boolean }> = [];
  const table: Array<Record<string, string | number>> = [];
  for (const r of results) {
    const ok = r.rounds.filter((x) => !('error' in x));
    const entry: Record<string, string | number> = { what: r.what, mode: r.mode, rounds: `${ok.length}/${r.rounds.length}` };
    if (ok.length) {
      entry.seconds = round2(med(r, 'seconds'));
      entry.mib_s = Math.round(med(r, 'mibS'));
      entry.raw_mib_s = r.what.startsWith('reader') ? '' : Math.round(med(r, 'raw_mib_s'));
      entry.ratio = r.what.startsWith('reader') ? '' : round2(med(r, 'ratio'));
      // The disk's own time only (run_disk started..finished): without the VM's snapshot, preflight, snapshot
      // removal and commit, which in the lab are dominated by its snapshots being complete copies of the disk.
      entry.copy_ratio = r.what.startsWith('reader') ? '' : round2(med(r, 'copy_ratio'));
      // Restores: the write alone, without the read-back that verifies it.
      entry.write_ratio = r.what === 'restore' ? round2(med(r, 'write_ratio')) : '';
      entry.cpu_s = round2(med(r, 'cpuSeconds'));
      entry.lab_cpu_s = round2(med(r, 'labCpuSeconds'));
      entry.peak_rss_mib = Math.round(med(r, 'peakRssMiB'));
      entry.rss_growth_mib = Math.round(med(r, 'rssGrowthMiB'));
      entry.disk_s = r.what.startsWith('reader') ? '' : round2(med(r, 'diskSeconds'));
      entry.busy_src = r.what === 'full' || r.what === 'incremental' ? round2(med(r, 'busySource')) : '';
      entry.loop_delay_max_ms = Math.round(med(r, 'loopDelayMaxMs'));
    } else entry.error = String(r.rounds[0]?.error ?? '');
    table.push(entry);
    const ratio = typeof entry.ratio === 'number' ? entry.ratio : NaN;
    if (r.what === 'full') goals.push({ goal: `full backup ${r.mode} ≥ 80% of raw source`, value: `${Math.round(ratio * 100)}%`, pass: ratio >= 0.8 });
    if (r.what === 'incremental') goals.push({ goal: `incremental ${r.mode} ≥ 60% of raw random-range read`, value: `${Math.round(ratio * 100)}%`, pass: ratio >= 0.6 });
    if (r.what === 'restore') goals.push({ goal: `restore ${r.mode} ≥ 70% of raw write`, value: `${Math.round(ratio * 100)}%`, pass: ratio >= 0.7 });
  }
  const rssRows = results.filter((r) => r.what === 'full' || r.what === 'incremental' || r.what === 'restore');
  const maxOf = (k: string) => Math.max(...rssRows.flatMap((r) => r.rounds.map((x) => (typeof x[k] === 'number' ? x[k] : 0))));
  const peakRss = maxOf('peakRssMiB');
  const growth = maxOf('rssGrowthMiB');
  // The bench process holds two labs' harnesses, two database clients and tsx besides the Transporter's code:
  // the absolute peak is an upper bound; the growth during a one-disk step is what that disk's pipeline needed.
  goals.push({ goal: 'Transporter RSS ≤ 128 MiB per concurrent disk: whole bench process peak (upper bound)', value: `${Math.round(peakRss)} MiB`, pass: peakRss <= 128 });
  goals.push({ goal: 'Transporter RSS ≤ 128 MiB per concurrent disk: RSS growth during a one-disk step', value: `${Math.round(growth)} MiB`, pass: growth <= 128 });

  const cols = ['what', 'mode', 'rounds', 'seconds', 'disk_s', 'mib_s', 'raw_mib_s', 'ratio', 'copy_ratio', 'write_ratio', 'busy_src', 'cpu_s', 'lab_cpu_s', 'peak_rss_mib', 'rss_growth_mib', 'loop_delay_max_ms', 'error'];
  console.log(`\n| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`);
  for (const t of table) console.log(`| ${cols.map((c) => String(t[c] ?? '')).join(' | ')} |`);
  console.log(`\nhost load (1/5/15 min): start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, end ${loadEnd.map((x) => x.toFixed(2)).join(' ')}`);
  for (const [m, why] of Object.entries(skipped)) console.log(`skipped ${m}: ${why}`);
  console.log('\ngoals (reported, not asserted):');
  for (const g of goals) console.log(`  ${g.pass ? 'PASS' : 'FAIL'}  ${g.goal}: ${g.value}`);

  const out = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { cpus: os.cpus().length, node: process.version, loadavgStart: loadStart, loadavgEnd: loadEnd },
    params: { sizeBytes: SIZE, allocatedBytes: allocBytes, allocatedExtents: allocated.length, rounds: ROUNDS, seed: SEED, nbdStreams: NBD_STREAMS },
    skipped,
    table,
    goals,
    rounds: results,
  };
  const file = SIZE === 2 * 1024 ** 3 && ROUNDS === 2 ? path.join(here, 'transports.json') : path.join(work, `transports-${SIZE / MiB}m-${ROUNDS}r.json`);
  fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

main()
  .catch((err: unknown) => {
    console.error((err as Error).stack ?? err);
    process.exitCode = 1;
  })
  .finally(() => {
    runner.disconnect();
    setTimeout(() => process.exit(), 500).unref();
  });
