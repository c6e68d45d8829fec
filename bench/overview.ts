/**
 * Overview benchmark at estate scale (a script that prints figures, never a test).
 *
 *   npm run bench -- overview [--vms 2000] [--runs 10000] [--jobs 36] [--reps 20] [--seed N]
 *
 * On a database of its own (created and dropped here) and a lab vCenter of its own: the lab gets `--vms` VMs
 * (no disks: the overview reads names and UUIDs only), registered with a Director built in this process as
 * apps/director's tests build it. The database gets `--jobs` jobs covering 90% of the VMs (the last 5% of each
 * job's VMs were added lately: never backed up), `--runs` finished backup runs spread over the jobs, one a day
 * per job, each with a run_vm and a run_disk per VM of its job (~90% succeeded, ~6% warning, ~4% failed; a
 * failed run has one failed VM), and restore points for each VM's last 14 good backups. Then it times, through
 * the Director's own routes (fastify.inject: routing, session, schema validation and serialization included),
 * N repetitions after one warm-up each of:
 *  - GET /api/overview/protection: the first page, a middle page, the last page, each state filter, a name
 *    search; with the inventory copy warm (the Director keeps it a minute; here an hour, so that no refresh falls
 *    inside the timed requests), and with `fresh=true` (every VM read from the lab vCenter now);
 *  - GET /api/runs: the Runs page's 100, 50, a job's runs, the failed runs.
 * Prints p50/p95/max milliseconds, the response size, the Director process's RSS (it is this process) and, for
 * the diagnosis, EXPLAIN ANALYZE of the overview's heaviest query. Then it loads the overview in Chromium
 * (`--browser-rounds`, default 5) and records per load, in the page's own clock from navigation start: the first
 * contentful paint, the protection table's first row, the time to interactive (Lighthouse's classic definition
 * with a 500 ms quiet window counted from the first row: see BrowserLoad.ttiMs), the long tasks, and every API call
 * with its start, duration and size. Writes bench/overview.json (default sizes) or bench/work/overview-*.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ProtectionOverview } from '@vaultline/contracts';
import { applyMigrations, createDb, MIGRATIONS_DIR, type Db } from '@vaultline/db';
import { createTestDatabase, type TestDatabase } from '@vaultline/db/testing';
import { memoryLogger } from '@vaultline/logger';
import { connectRedis, EventBus, redisReady, TransporterRegistry, WorkQueue, type Redis } from '@vaultline/queue';
import { makeSelfSignedCertificate, selfSignedNames } from '@vaultline/tls';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { buildApp, type App } from '../apps/director/src/app.ts';
import { SESSION_COOKIE } from '../apps/director/src/auth/sessions.ts';
import { ensureFirstAdmin } from '../apps/director/src/services/bootstrap.ts';
import { vsphereConnector } from '../apps/director/src/services/vsphere-connector.ts';
import { arg, median, rng } from './common.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB_DIST = path.join(here, '..', 'apps', 'web', 'dist');
const CHROMIUM = '/usr/bin/chromium';
/** The admin's password once the bench has changed the first one (the browser signs in with it). */
const BENCH_PASSWORD = 'bench-horse-battery-1';
const BROWSER_ROUNDS = Math.max(1, Number(arg('browser-rounds', '5')));

/** Time to interactive: the quiet window that must follow it, and the requests allowed in flight during it. */
const QUIET_WINDOW_MS = 500;
const QUIET_MAX_IN_FLIGHT = 2;
/** Lighthouse's own quiet window, recorded beside ours for comparison. */
const LIGHTHOUSE_WINDOW_MS = 5000;

interface BrowserLoad {
  /** First contentful paint after navigating to the overview (ms from navigation start, the page's time origin). */
  fcpMs: number | null;
  /** Navigation start to the protection table's first row in the document (React's commit; painted in the next frame). */
  firstRowMs: number;
  /**
   * Time to interactive (ms from navigation start), Lighthouse's classic definition (its "interactive" metric,
   * v5-v9) with a shorter window and the first row as the lower bound instead of the first contentful paint: the
   * first moment at or after the first row from which the page stays quiet for QUIET_WINDOW_MS — no long task
   * (PerformanceObserver 'longtask': a main-thread task of 50 ms or more) overlaps the window, and at no time in
   * it are more than QUIET_MAX_IN_FLIGHT requests in flight (Lighthouse: 5 s, "network 2-quiet"). It is the end
   * of the last long task or the moment the requests drop to 2 in flight, whichever comes later, or the first
   * row itself when the page is already quiet then (Lighthouse takes the end of the last long task even when the
   * requests settle later; here both hold from TTI on). Null when no such window came within the round's timeout.
   */
  ttiMs: number | null;
  /** The same with Lighthouse's own 5 s window (LIGHTHOUSE_WINDOW_MS), for comparison; null when not found within 30 s. */
  ttiLighthouseWindowMs: number | null;
  /** When the last of the API calls made before TTI was answered (ms from navigation start; it may come after TTI). */
  apiDoneMs: number | null;
  /** The long tasks from navigation start to the end of the quiet window: [start, duration] ms. */
  longTasks: [number, number][];
  /**
   * The long tasks after the quiet window, until Lighthouse's 5 s window was found (or 30 s after every API call made
   * before TTI was answered): the work the late answers bring, which a 500 ms window does not wait for.
   */
  longTasksAfter: [number, number][];
  /** Milliseconds of main-thread work above 50 ms per long task before TTI (Lighthouse's total blocking time, from the first row). */
  blockingMs: number;
  /** API calls the page made while loading (up to TTI), in order. */
  api: string[];
  /** The same calls as the page timed them (resource timing): start and duration, ms from navigation start, and KiB received (encoded body). */
  apiTimings: { url: string; startMs: number; ms: number; kib: number }[];
}

/**
 * Recorded in the page from before its first script runs (an init script, so a navigation's own early work is
 * seen): the long tasks, and when the first protection row enters the document.
 */
const PERF_INIT_SCRIPT = `(() => {
  const s = { longTasks: [], firstRowAt: null, observer: null };
  Object.defineProperty(window, '__vaultlineBench', { value: s });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) s.longTasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) {
    s.observer = String(err);
  }
  if (performance.setResourceTimingBufferSize) performance.setResourceTimingBufferSize(100000);
  const mo = new MutationObserver(() => {
    if (s.firstRowAt === null && document.querySelector('[data-testid="protection-row"]')) {
      s.firstRowAt = performance.now();
      mo.disconnect();
    }
  });
  mo.observe(document, { childList: true, subtree: true });
})();`;

/** What the page reports of one load (page time, ms from navigation start). */
interface PageState {
  now: number;
  timeOrigin: number;
  firstRowAt: number | null;
  observer: string | null;
  longTasks: [number, number][];
  /** Every finished request, the document included: [start, end, url, bytes received]. */
  requests: [number, number, string, number][];
}

/**
 * TTI from what was seen so far (see BrowserLoad.ttiMs): the first candidate t ≥ `from` — `from` itself, the end
 * of a long task, the end of a request — whose window [t, t + windowMs) has passed, meets no long task and
 * never has more than QUIET_MAX_IN_FLIGHT requests in flight (a request not finished yet is in flight until now
 * and after). Only windows ending by `seenUntil` count. Null while no window qualifies yet.
 */
function timeToInteractive(from: number, seenUntil: number, longTasks: [number, number][], requests: [number, number][], windowMs = QUIET_WINDOW_MS): number | null {
  const candidates = [from, ...longTasks.map(([s, d]) => s + d), ...requests.map(([, e]) => e)].filter((t) => t >= from && Number.isFinite(t)).sort((a, b) => a - b);
  for (const t of candidates) {
    const end = t + windowMs;
    if (end > seenUntil) return null;
    if (longTasks.some(([s, d]) => s < end && s + d > t)) continue;
    // In flight at t, and at every start inside the window (the count only grows at a start).
    const points = [t, ...requests.map(([s]) => s).filter((s) => s > t && s < end)];
    const inFlight = (p: number) => requests.filter(([s, e]) => s <= p && e > p).length;
    if (points.every((p) => inFlight(p) <= QUIET_MAX_IN_FLIGHT)) return t;
  }
  return null;
}

/**
 * The overview in Chromium (Debian's) through the Director listening on a free port: sign in once, then load
 * the overview `rounds` times, each time the first contentful paint, the first row of the protection table, the
 * time to interactive (see BrowserLoad.ttiMs) and the API calls made. Skipped (with why) when the console is not
 * built or Chromium is missing.
 */
async function browserFigures(d: Director, rounds: number): Promise<{ loads: BrowserLoad[] } | { skipped: string }> {
  if (!fs.existsSync(path.join(WEB_DIST, 'index.html'))) return { skipped: `the console is not built (${WEB_DIST}): npx turbo run build` };
  if (!fs.existsSync(CHROMIUM)) return { skipped: `no Chromium at ${CHROMIUM}: apt-get install chromium` };
  const { chromium } = await import('playwright');
  const base = await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1440, height: 900 } });
    await context.addInitScript({ content: PERF_INIT_SCRIPT });
    const page = await context.newPage();
    await page.goto(base);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(BENCH_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('protection-row').first().waitFor({ timeout: 120_000 });
    const loads: BrowserLoad[] = [];
    for (let i = 0; i < rounds; i++) {
      // Each API call with when it was made (wall clock, ms), to keep those made before TTI.
      const api: { call: string; at: number }[] = [];
      // Requests not finished yet, by their start (wall clock, ms): resource timing only lists finished ones.
      type Req = { url(): string; method(): string; timing(): { startTime: number } };
      const open = new Map<Req, number>();
      const onRequest = (r: Req) => {
        open.set(r, Date.now());
        const u = new URL(r.url());
        if (u.pathname.startsWith('/api/')) api.push({ call: `${r.method()} ${u.pathname}${u.search}`, at: Date.now() });
      };
      const onDone = (r: Req) => void open.delete(r);
      page.on('request', onRequest);
      page.on('requestfinished', onDone);
      page.on('requestfailed', onDone);
      await page.goto(`${base}/`, { waitUntil: 'commit' });
      await page.getByTestId('protection-row').first().waitFor({ timeout: 120_000 });
      const read = (): Promise<PageState> =>
        page.evaluate(() => {
          const g = globalThis as unknown as { __vaultlineBench: { firstRowAt: number | null; observer: string | null; longTasks: [number, number][] } };
          // The page's (DOM) resource timing, typed here by hand: this script is checked against Node's types.
          const perf = performance as unknown as { getEntriesByType(type: string): { name: string; startTime: number; responseEnd: number; encodedBodySize?: number }[] };
          const entries = [...perf.getEntriesByType('navigation'), ...perf.getEntriesByType('resource')];
          return {
            now: performance.now(),
            timeOrigin: performance.timeOrigin,
            firstRowAt: g.__vaultlineBench.firstRowAt,
            observer: g.__vaultlineBench.observer,
            longTasks: g.__vaultlineBench.longTasks,
            requests: entries.map((e): [number, number, string, number] => [e.startTime, e.responseEnd, e.name, e.encodedBodySize ?? 0]),
          };
        });
      let state = await read();
      if (state.observer) throw new Error(`Chromium has no long-task observer: ${state.observer}`);
      const firstRowMs = state.firstRowAt ?? state.now;
      // A request still open counts from its start (wall clock to page time) until it ends, after the window too.
      const requestsOf = (st: PageState): [number, number][] => [
        ...st.requests.map(([start, end]): [number, number] => [start, end]),
        ...[...open.entries()].map(([r, at]): [number, number] => [(r.timing().startTime > 0 ? r.timing().startTime : at) - st.timeOrigin, Infinity]),
      ];
      // A long task's entry reaches the observer only after the task: windows ending in the last 250 ms wait a poll.
      const ttiOf = (st: PageState, windowMs: number) => timeToInteractive(firstRowMs, st.now - 250, st.longTasks, requestsOf(st), windowMs);
      let ttiMs: number | null = null;
      const deadline = Date.now() + 60_000;
      while ((ttiMs = ttiOf(state, QUIET_WINDOW_MS)) === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        state = await read();
      }
      const until = ttiMs ?? state.now;
      // The calls made before TTI may still be answering then (two in flight are allowed): wait for their answers
      // (at most 30 s more) to time every one of them.
      const madeBefore = (at: number) => at - state.timeOrigin < until;
      const settleBy = Date.now() + 30_000;
      while ([...open.entries()].some(([r, at]) => madeBefore(at) && new URL(r.url()).pathname.startsWith('/api/')) && Date.now() < settleBy) await new Promise((r) => setTimeout(r, 100));
      // For comparison, TTI with Lighthouse's own 5 s window, which waits out what the late answers bring (the
      // inventory panel renders its 2,000 VMs when they come): polled until found (at most 30 s more).
      let settled = await read();
      let ttiLighthouseMs: number | null = null;
      const deadline5 = Date.now() + 30_000;
      while ((ttiLighthouseMs = ttiOf(settled, LIGHTHOUSE_WINDOW_MS)) === null && Date.now() < deadline5) {
        await new Promise((r) => setTimeout(r, 250));
        settled = await read();
      }
      const fcpMs = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
      page.off('request', onRequest);
      page.off('requestfinished', onDone);
      page.off('requestfailed', onDone);
      const r0 = (x: number) => Math.round(x);
      const apiTimings = settled.requests
        .filter(([start, , url]) => start < until && new URL(url).pathname.startsWith('/api/'))
        .sort((a, b) => a[0] - b[0])
        .map(([start, end, url, bytes]) => {
          const u = new URL(url);
          return { url: `${u.pathname}${u.search}`, startMs: r0(start), ms: r0(end - start), kib: round1(bytes / 1024) };
        });
      loads.push({
        fcpMs: fcpMs === null ? null : r0(fcpMs),
        firstRowMs: r0(firstRowMs),
        ttiMs: ttiMs === null ? null : r0(ttiMs),
        ttiLighthouseWindowMs: ttiLighthouseMs === null ? null : r0(ttiLighthouseMs),
        apiDoneMs: apiTimings.length > 0 ? Math.max(...apiTimings.map((c) => c.startMs + c.ms)) : null,
        longTasks: state.longTasks.filter(([start]) => start < until + QUIET_WINDOW_MS).map(([start, dur]) => [r0(start), r0(dur)]),
        longTasksAfter: settled.longTasks.filter(([start]) => start >= until + QUIET_WINDOW_MS).map(([start, dur]) => [r0(start), r0(dur)]),
        blockingMs: r0(state.longTasks.filter(([start, dur]) => start + dur > firstRowMs && start < until).reduce((sum, [, dur]) => sum + Math.max(0, dur - 50), 0)),
        api: api.filter((c) => madeBefore(c.at)).map((c) => c.call),
        apiTimings,
      });
    }
    return { loads };
  } finally {
    await browser.close();
  }
}
const VMS = Math.max(10, Number(arg('vms', '2000')));
const RUNS = Math.max(1, Number(arg('runs', '10000')));
const JOBS = Math.max(1, Number(arg('jobs', '36')));
const REPS = Math.max(1, Number(arg('reps', '20')));
const SEED = Number(arg('seed', '20261206'));
const PG_SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MiB = 1024 * 1024;

const round1 = (x: number) => Math.round(x * 10) / 10;
/** The nearest-rank percentile. */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// ---- the Director, as apps/director/test/helpers.ts builds it ----------------------------------------------------
interface Director {
  app: App;
  db: Db;
  database: TestDatabase;
  cookie: string;
  close(): Promise<void>;
}

async function startDirector(): Promise<Director> {
  const database = await createTestDatabase(PG_SERVER, 'vaultline_bench_overview');
  try {
    await applyMigrations(database.url, MIGRATIONS_DIR);
    const db = createDb(database.url, { connectTimeoutMs: 2_000 });
    const redis: Redis = connectRedis(REDIS_URL);
    await redisReady(redis);
    const registry = new TransporterRegistry(redis, 1_000, { namespace: database.name });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-bench-overview-'));
    const { log } = memoryLogger('bench-overview');
    const cost = { N: 1 << 10, r: 8, p: 1 };
    const admin = await ensureFirstAdmin(db, dataDir, cost);
    const queue = new WorkQueue({ redisUrl: REDIS_URL, namespace: database.name });
    const events = new EventBus(REDIS_URL, database.name);
    const made = makeSelfSignedCertificate(selfSignedNames('127.0.0.1'));
    const app = await buildApp({
      db,
      databaseUrl: database.url,
      redis,
      registry,
      queue,
      events,
      connector: vsphereConnector(),
      log,
      version: 'bench',
      secretKey: Buffer.alloc(32, 7),
      dataDir,
      passwordCost: cost,
      checkAnswers: false,
      tls: made,
      // The copy of the inventory outlives the timed requests (the product keeps it a minute): a refresh inside them
      // would time the vCenter, which `fresh=true` times on its own.
      inventoryCache: { maxAgeMs: 3600_000 },
      // The console as the appliance serves it (built by `npx turbo run build`), for the browser figures.
      webDist: WEB_DIST,
    });
    await app.fastify.ready();
    const login = await app.fastify.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: admin.password } });
    const c = login.cookies.find((x) => x.name === SESSION_COOKIE);
    if (!c) throw new Error(`no session cookie: ${login.body}`);
    const cookie = `${SESSION_COOKIE}=${c.value}`;
    const change = await app.fastify.inject({ method: 'POST', url: '/api/auth/change-password', headers: { cookie }, payload: { currentPassword: admin.password, newPassword: BENCH_PASSWORD } });
    if (change.statusCode !== 200) throw new Error(`password change failed: ${change.body}`);
    return {
      app,
      db,
      database,
      cookie,
      async close() {
        await app.fastify.close();
        await queue.obliterate().catch(() => undefined);
        await queue.close();
        await events.close();
        await db.$disconnect();
        redis.disconnect();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await database.drop().catch(() => undefined);
    throw err;
  }
}

// ---- the estate ----------------------------------------------------------------------------------------------------
interface EstateVm {
  name: string;
  moref: string;
  instanceUuid: string;
}

/** `VMS` VMs in the lab, 16 at a time, named like an estate's (`<role>-<site>-<n>`). */
async function makeVms(lab: Lab): Promise<EstateVm[]> {
  const roles = ['web', 'app', 'db', 'file', 'mail', 'dc', 'ci', 'cache', 'proxy', 'kube'];
  const sites = ['par', 'fra', 'ams', 'lon'];
  const names = Array.from({ length: VMS }, (_, i) => `${roles[i % roles.length]}-${sites[Math.floor(i / roles.length) % sites.length]}-${String(i).padStart(4, '0')}`);
  const out: EstateVm[] = new Array(VMS);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < names.length) {
        const i = next++;
        const vm = await lab.createVm({ name: names[i]!, disks: [], cbt: false });
        if (!vm.instanceUuid) throw new Error(`lab VM ${vm.name} has no instance UUID`);
        out[i] = { name: vm.name, moref: vm.moref, instanceUuid: vm.instanceUuid };
      }
    }),
  );
  console.log(`lab: ${VMS} VMs created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

interface SeedFigures {
  seconds: number;
  jobs: number;
  runs: number;
  runVms: number;
  runDisks: number;
  restorePoints: number;
  coveredVms: number;
  neverBackedUp: number;
}

/**
 * Jobs, runs, run_vms, run_disks and restore points, written by PostgreSQL itself from a table of the VMs
 * (`bench_vms`, dropped at the end): 10,000 runs of ~50 VMs are half a million rows, too many to send one by one.
 */
async function seed(db: Db, vcenterId: string, vms: EstateVm[]): Promise<SeedFigures> {
  const t0 = performance.now();
  const r = rng(SEED);
  const repos = await Promise.all([0, 1].map((i) => db.repository.create({ data: { name: `bench-repo-${i}`, location: `/srv/bench-${i}` } })));
  // 90% of the VMs are in a job, in contiguous slices of about the same size.
  const covered = Math.floor(vms.length * 0.9);
  const perJob = Math.ceil(covered / JOBS);
  const jobs: { id: string; vms: EstateVm[] }[] = [];
  for (let j = 0; j < JOBS; j++) {
    const slice = vms.slice(j * perJob, Math.min(covered, (j + 1) * perJob));
    if (slice.length === 0) break;
    const job = await db.backupJob.create({
      data: {
        name: `bench-job-${String(j).padStart(2, '0')}`,
        vcenterId,
        repositoryId: repos[j % 2]!.id,
        sources: slice.map((v) => ({ moref: v.moref, name: v.name, instanceUuid: v.instanceUuid })),
        schedule: `${j % 60} ${(j % 6) + 20} * * *`,
      },
    });
    jobs.push({ id: job.id, vms: slice });
  }
  await db.$executeRawUnsafe(`CREATE TABLE bench_vms (job_id uuid NOT NULL, pos int NOT NULL, moref text NOT NULL, name text NOT NULL, uuid text NOT NULL, backed_up boolean NOT NULL)`);
  const rows: string[] = [];
  for (const job of jobs) {
    // The last 5% of a job's VMs joined it lately: no run has them yet.
    const fresh = Math.floor(job.vms.length * 0.05);
    job.vms.forEach((v, pos) => rows.push(`('${job.id}', ${pos}, '${v.moref}', '${v.name}', '${v.instanceUuid}', ${pos < job.vms.length - fresh})`));
  }
  for (let i = 0; i < rows.length; i += 1000) await db.$executeRawUnsafe(`INSERT INTO bench_vms VALUES ${rows.slice(i, i + 1000).join(',')}`);

  // The runs: RUNS spread over the jobs, one a day per job going back, with a seeded result.
  await db.$executeRawUnsafe(`CREATE TABLE bench_runs (id uuid PRIMARY KEY, job_id uuid NOT NULL, day int NOT NULL, status text NOT NULL, at timestamptz NOT NULL)`);
  const runRows: string[] = [];
  const now = Date.now();
  for (let k = 0; k < RUNS; k++) {
    const job = jobs[k % jobs.length]!;
    const day = Math.floor(k / jobs.length);
    const x = r();
    const status = x < 0.04 ? 'failed' : x < 0.1 ? 'warning' : 'succeeded';
    // Nightly at 20:00–01:00, `day` days ago (day 0: the last night, within the last 24 hours).
    const at = new Date(now - (day * 24 + 2 + (k % jobs.length) / 6) * 3600_000);
    runRows.push(`(gen_random_uuid(), '${job.id}', ${day}, '${status}', '${at.toISOString()}')`);
  }
  for (let i = 0; i < runRows.length; i += 2000) await db.$executeRawUnsafe(`INSERT INTO bench_runs VALUES ${runRows.slice(i, i + 2000).join(',')}`);
  await db.$executeRawUnsafe(`
    INSERT INTO job_runs (id, job_id, kind, status, trigger, created_at, started_at, finished_at, error)
    SELECT id, job_id, 'backup', status::"RunStatus", 'schedule', at, at, at + interval '40 minutes',
           CASE WHEN status = 'failed' THEN '1 of the VMs failed' END
    FROM bench_runs`);
  // One item per VM of the job (backed up already); in a failed run the VM at (day mod size) failed, in a warning
  // run it ended with a warning, the others succeeded.
  await db.$executeRawUnsafe(`
    INSERT INTO run_vms (id, run_id, vm_moref, vm_name, vm_instance_uuid, status, phase, transporter_id, started_at, finished_at, error, log)
    SELECT gen_random_uuid(), r.id, v.moref, v.name, v.uuid, s.status::"RunStatus", s.status, 'bench-transporter',
           r.at + (v.pos * interval '20 seconds'), r.at + (v.pos * interval '20 seconds') + interval '3 minutes',
           CASE WHEN s.status = 'failed' THEN 'the snapshot could not be taken: the VM is busy'
                WHEN s.status = 'warning' THEN 'quiescing failed: a crash-consistent snapshot was taken' END,
           jsonb_build_array(jsonb_build_object('at', r.at, 'level', 'info', 'message', 'snapshot taken'), jsonb_build_object('at', r.at, 'level', 'info', 'message', 'snapshot removed'))
    FROM bench_runs r
    JOIN bench_vms v ON v.job_id = r.job_id AND v.backed_up
    CROSS JOIN LATERAL (SELECT CASE WHEN r.status = 'succeeded' THEN 'succeeded'
                                    WHEN v.pos = r.day % (SELECT count(*) FROM bench_vms w WHERE w.job_id = r.job_id AND w.backed_up) THEN r.status
                                    ELSE 'succeeded' END AS status) s`);
  await db.$executeRawUnsafe(`
    INSERT INTO run_disks (id, run_vm_id, device_key, label, capacity_bytes, phase, transport, cbt_used, read_mode, bytes_read, bytes_written, started_at, finished_at)
    SELECT gen_random_uuid(), v.id, 2000, 'Hard disk 1', 64::bigint << 30, CASE WHEN v.status = 'failed' THEN 'failed' ELSE 'done' END, 'nbdssl', true,
           CASE WHEN v.status = 'failed' THEN NULL WHEN r.day % 7 = 6 THEN 'full' ELSE 'changed' END,
           CASE WHEN v.status = 'failed' THEN 0 ELSE (1 + (hashtext(v.id::text) & 1023))::bigint << 20 END,
           CASE WHEN v.status = 'failed' THEN 0 ELSE (1 + (hashtext(v.id::text) & 255))::bigint << 20 END,
           v.started_at, v.finished_at
    FROM run_vms v JOIN bench_runs r ON r.id = v.run_id`);
  // Restore points of each VM's 14 newest good backups (retention keeps 14).
  await db.$executeRawUnsafe(`
    INSERT INTO restore_points (id, repository_id, repo_point_id, run_vm_id, vm_instance_uuid, vm_name, created_at, logical_bytes, new_bytes)
    SELECT gen_random_uuid(), j.repository_id, x.id::text, x.id, x.vm_instance_uuid, x.vm_name, x.finished_at, 64::bigint << 30, 1::bigint << 28
    FROM (SELECT v.*, r.job_id, row_number() OVER (PARTITION BY v.vm_instance_uuid ORDER BY v.finished_at DESC) AS n
          FROM run_vms v JOIN job_runs r ON r.id = v.run_id WHERE v.status IN ('succeeded', 'warning')) x
    JOIN backup_jobs j ON j.id = x.job_id
    WHERE x.n <= 14`);
  await db.$executeRawUnsafe('DROP TABLE bench_vms');
  await db.$executeRawUnsafe('DROP TABLE bench_runs');
  await db.$executeRawUnsafe('VACUUM ANALYZE');
  const [runs, runVms, runDisks, restorePoints] = await Promise.all([db.jobRun.count(), db.runVm.count(), db.runDisk.count(), db.restorePoint.count()]);
  const fresh = jobs.reduce((a, j) => a + Math.floor(j.vms.length * 0.05), 0);
  return { seconds: (performance.now() - t0) / 1000, jobs: jobs.length, runs, runVms, runDisks, restorePoints, coveredVms: jobs.reduce((a, j) => a + j.vms.length, 0), neverBackedUp: fresh };
}

// ---- timing ---------------------------------------------------------------------------------------------------------
interface Timed {
  what: string;
  url: string;
  reps: number;
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
  kib: number;
  rows: number;
  rss_mib: number;
  rss_peak_mib: number;
}

async function time(d: Director, what: string, url: string, reps = REPS): Promise<Timed> {
  const get = () => d.app.fastify.inject({ method: 'GET', url, headers: { cookie: d.cookie } });
  const first = await get(); // warm-up (and the answer's size)
  if (first.statusCode !== 200) throw new Error(`${url}: ${first.statusCode} ${first.body.slice(0, 300)}`);
  const body = first.json() as ProtectionOverview | unknown[];
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const ms: number[] = [];
  try {
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const res = await get();
      ms.push(performance.now() - t0);
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
    }
  } finally {
    clearInterval(sampler);
  }
  const rss = process.memoryUsage.rss();
  const row: Timed = {
    what,
    url,
    reps,
    p50_ms: round1(percentile(ms, 50)),
    p95_ms: round1(percentile(ms, 95)),
    max_ms: round1(Math.max(...ms)),
    kib: round1(first.rawPayload.length / 1024),
    rows: Array.isArray(body) ? body.length : (body as ProtectionOverview).vms.length,
    rss_mib: Math.round(rss / MiB),
    rss_peak_mib: Math.round(Math.max(peak, rss) / MiB),
  };
  console.log(`  ${what}: p50 ${row.p50_ms} ms, p95 ${row.p95_ms} ms (${row.rows} rows, ${row.kib} KiB)`);
  return row;
}

/** EXPLAIN ANALYZE of a query (its plan's total time and the top lines). */
async function explain(db: Db, sql: string): Promise<{ ms: number; plan: string[] }> {
  const rows = await db.$queryRawUnsafe<{ 'QUERY PLAN': string }[]>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`);
  const plan = rows.map((r) => r['QUERY PLAN']);
  const ms = Number(/Execution Time: ([\d.]+) ms/.exec(plan.at(-1) ?? '')?.[1] ?? NaN);
  return { ms, plan };
}

// The overview's query of every VM's latest finished backup item (apps/director/src/routes/overview.ts, latestBackups):
// one row per VM of vm_latest_backups, which a trigger on run_vms keeps (migration 20261206210000).
const LATEST_BACKUPS_SQL = `
    SELECT l.vm_key AS k, v.run_id::text AS run_id, v.status::text AS status, l.at, v.error,
           COALESCE(SUM(d.bytes_written), 0)::bigint AS bytes_written,
           bool_and(d.read_mode = 'changed') AS incremental
    FROM vm_latest_backups l JOIN run_vms v ON v.id = l.run_vm_id LEFT JOIN run_disks d ON d.run_vm_id = v.id
    GROUP BY l.vm_key, v.run_id, v.status, l.at, v.error`;

// What it did before: every finished backup item sorted to pick each VM's newest (timed beside it in the same run).
const LATEST_BY_SCAN_SQL = `
    WITH items AS (
      SELECT COALESCE(v.vm_instance_uuid, j.vcenter_id::text || '/' || v.vm_moref) AS k, v.id, v.run_id,
             v.status::text AS status, COALESCE(v.finished_at, r.created_at) AS at, v.error
      FROM run_vms v JOIN job_runs r ON r.id = v.run_id LEFT JOIN backup_jobs j ON j.id = r.job_id
      WHERE r.kind = 'backup' AND v.status IN ('succeeded', 'warning', 'failed', 'cancelled')
    ), latest AS (
      SELECT DISTINCT ON (k) * FROM items WHERE k IS NOT NULL ORDER BY k, at DESC
    )
    SELECT l.k, l.run_id::text AS run_id, l.status, l.at, l.error,
           COALESCE(SUM(d.bytes_written), 0)::bigint AS bytes_written,
           bool_and(d.read_mode = 'changed') AS incremental
    FROM latest l LEFT JOIN run_disks d ON d.run_vm_id = l.id
    GROUP BY l.k, l.run_id, l.status, l.at, l.error`;


/** The median of 5 runs of `fn`, after one more, in ms. */
async function medianMs(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return percentile(ms, 50);
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg();
  let lab: Lab | undefined;
  let d: Director | undefined;
  try {
    lab = await startLab({ port: 0, hotadd: false });
    d = await startDirector();
    const rssIdle = process.memoryUsage.rss();
    const vms = await makeVms(lab);
    const vc = await d.app.fastify.inject({
      method: 'POST',
      url: '/api/vcenters',
      headers: { cookie: d.cookie },
      payload: { name: 'bench-vc', url: lab.url, username: lab.username, password: lab.password, thumbprintSha256: lab.thumbprintSha256 },
    });
    if (vc.statusCode !== 201) throw new Error(`vCenter refused: ${vc.body}`);
    const figures = await seed(d.db, (vc.json() as { id: string }).id, vms);
    console.log(
      `seeded in ${figures.seconds.toFixed(1)} s: ${figures.jobs} jobs covering ${figures.coveredVms} VMs (${figures.neverBackedUp} never backed up), ${figures.runs} runs, ${figures.runVms} run_vms, ${figures.runDisks} run_disks, ${figures.restorePoints} restore points`,
    );
    const rssSeeded = process.memoryUsage.rss();

    const o = (q: string) => `/api/overview/protection?${q}`;
    const all = (await d.app.fastify.inject({ method: 'GET', url: o('limit=50&fresh=true'), headers: { cookie: d.cookie } })).json() as ProtectionOverview;
    console.log(`overview: ${all.total} VMs, counts ${JSON.stringify(all.counts)}, last 24 h ${JSON.stringify(all.last24h)}`);
    const middle = Math.floor(all.total / 2 / 50) * 50;
    const last = Math.floor((all.total - 1) / 50) * 50;
    const [job] = await d.db.backupJob.findMany({ take: 1, orderBy: { name: 'asc' } });
    console.log(`timing, ${REPS} repetitions each after one warm-up:`);
    const table: Timed[] = [];
    table.push(await time(d, 'protection: first page (50)', o('offset=0&limit=50')));
    table.push(await time(d, `protection: middle page (offset ${middle})`, o(`offset=${middle}&limit=50`)));
    table.push(await time(d, `protection: last page (offset ${last})`, o(`offset=${last}&limit=50`)));
    table.push(await time(d, 'protection: 100 a page', o('offset=0&limit=100')));
    table.push(await time(d, 'protection: status=unprotected', o('status=unprotected&limit=50')));
    table.push(await time(d, 'protection: status=attention', o('status=attention&limit=50')));
    table.push(await time(d, 'protection: status=protected (middle page)', o(`status=protected&offset=${Math.floor(all.counts.protected / 2 / 50) * 50}&limit=50`)));
    table.push(await time(d, 'protection: name search q=db-par', o('q=db-par&limit=50')));
    table.push(await time(d, 'protection: fresh=true (inventory read now)', o('fresh=true&limit=50'), Math.min(REPS, 5)));
    table.push(await time(d, 'runs: limit=100, logs=false (the Runs page)', '/api/runs?limit=100&logs=false'));
    table.push(await time(d, 'runs: limit=100 with every log', '/api/runs?limit=100'));
    table.push(await time(d, 'runs: limit=50', '/api/runs?limit=50'));
    table.push(await time(d, "runs: a job's, limit=50", `/api/runs?jobId=${job!.id}&limit=50`));
    table.push(await time(d, 'runs: status=failed, limit=50', '/api/runs?status=failed&limit=50'));
    const rssEnd = process.memoryUsage.rss();

    // Where the time goes: each query of the overview's handler alone (they run in parallel there), the plan of
    // the heaviest, and what an index would give it; the Runs list's queries and answer.
    const db = d.db;
    const since = new Date(Date.now() - 24 * 3600_000);
    const parts = {
      latestBackups: await medianMs(() => db.$queryRawUnsafe(LATEST_BACKUPS_SQL)),
      latestBackupsByScanBefore: await medianMs(() => db.$queryRawUnsafe(LATEST_BY_SCAN_SQL)),
      restorePointsByVm: await medianMs(() => db.restorePoint.groupBy({ by: ['vmInstanceUuid'], where: { pruningAt: null }, _count: { _all: true }, _max: { createdAt: true } })),
      runsLast24hByStatus: await medianMs(() => db.jobRun.groupBy({ by: ['status'], where: { kind: 'backup', finishedAt: { gte: since } }, _count: { _all: true } })),
      enabledJobs: await medianMs(() => db.backupJob.findMany({ where: { enabled: true }, select: { id: true, name: true, vcenterId: true, sources: true, schedule: true } })),
      runsPageQueries: await medianMs(() =>
        db.jobRun.findMany({ orderBy: { createdAt: 'desc' }, take: 100, include: { vms: { include: { disks: { orderBy: { deviceKey: 'asc' } } }, orderBy: { vmName: 'asc' } } } }),
      ),
      runsPageWithoutItems: await medianMs(() => db.jobRun.findMany({ orderBy: { createdAt: 'desc' }, take: 100 })),
    };
    const latest = await explain(db, LATEST_BACKUPS_SQL);
    const scan = await explain(db, LATEST_BY_SCAN_SQL);
    const runItems = await db.$queryRawUnsafe<{ items: bigint; disks: bigint }[]>(
      `SELECT count(DISTINCT v.id) AS items, count(d.id) AS disks FROM (SELECT id FROM job_runs ORDER BY created_at DESC LIMIT 100) r JOIN run_vms v ON v.run_id = r.id LEFT JOIN run_disks d ON d.run_vm_id = v.id`,
    );
    console.log('\neach query alone (median of 5, through Prisma, ms):');
    for (const [k, v] of Object.entries(parts)) console.log(`  ${k}: ${v.toFixed(1)}`);
    console.log(`the Runs page's 100 runs hold ${runItems[0]!.items} items and ${runItems[0]!.disks} disks, all in the answer (with each item's log)`);
    console.log(`\nlatestBackups (the overview's query of every VM's last backup): ${latest.ms.toFixed(1)} ms in PostgreSQL; plan:`);
    for (const line of latest.plan) console.log(`    ${line}`);
    console.log(`\nthe scan over every finished item it replaced (migration 20261206210000): ${scan.ms.toFixed(1)} ms in PostgreSQL`);

    console.log(`\nthe overview in Chromium, ${BROWSER_ROUNDS} loads after signing in ...`);
    const inBrowser = await browserFigures(d, BROWSER_ROUNDS);
    if ('skipped' in inBrowser) console.log(`  not measured: ${inBrowser.skipped}`);
    else {
      const loads = inBrowser.loads;
      const fcp = loads.flatMap((l) => (l.fcpMs === null ? [] : [l.fcpMs]));
      const tti = loads.flatMap((l) => (l.ttiMs === null ? [] : [l.ttiMs]));
      const line = (xs: number[]) => `${xs.join(', ')} ms (median ${median(xs)})`;
      console.log(`  first contentful paint: ${line(fcp)}`);
      console.log(`  protection table's first row: ${line(loads.map((l) => l.firstRowMs))}`);
      console.log(`  time to interactive (${QUIET_WINDOW_MS} ms without long tasks and with at most ${QUIET_MAX_IN_FLIGHT} requests in flight, from the first row): ${line(tti)}${tti.length < loads.length ? ` (${loads.length - tti.length} loads without a quiet window within 60 s)` : ''}`);
      const tti5 = loads.flatMap((l) => (l.ttiLighthouseWindowMs === null ? [] : [l.ttiLighthouseWindowMs]));
      console.log(`  the same with Lighthouse's ${LIGHTHOUSE_WINDOW_MS / 1000} s window: ${line(tti5)}`);
      const done = loads.flatMap((l) => (l.apiDoneMs === null ? [] : [l.apiDoneMs]));
      console.log(`  every API call of the load answered: ${line(done)}`);
      console.log(`  long tasks up to TTI: ${loads.map((l) => l.longTasks.length).join(', ')}; blocking time after the first row: ${line(loads.map((l) => l.blockingMs))}`);
      console.log(`  long tasks after TTI, until every answer is in and rendered: ${loads.map((l) => (l.longTasksAfter.length === 0 ? 'none' : l.longTasksAfter.map(([start, dur]) => `${dur} ms at ${start}`).join(' + '))).join('; ')}`);
      console.log(`  longest task per load: ${line(loads.map((l) => Math.max(0, ...l.longTasks.map(([, dur]) => dur))))}`);
      console.log(`  API calls of one load (${loads[0]!.api.length}): ${loads[0]!.api.join(', ')}`);
      for (const c of loads[0]!.apiTimings) console.log(`    ${c.url}: from ${c.startMs} ms, ${c.ms} ms, ${c.kib} KiB`);
    }

    const cols: (keyof Timed)[] = ['what', 'reps', 'p50_ms', 'p95_ms', 'max_ms', 'rows', 'kib', 'rss_mib', 'rss_peak_mib'];
    console.log(`\n| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`);
    for (const t of table) console.log(`| ${cols.map((c) => String(t[c])).join(' | ')} |`);
    const mib = (x: number) => Math.round(x / MiB);
    console.log(`\nDirector (this process) RSS: ${mib(rssIdle)} MiB built, ${mib(rssSeeded)} MiB after seeding, ${mib(rssEnd)} MiB after the timed requests, peak ${Math.max(...table.map((t) => t.rss_peak_mib))} MiB`);
    const loadEnd = os.loadavg();
    console.log(`host load (1/5/15 min): start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, end ${loadEnd.map((x) => x.toFixed(2)).join(' ')}`);

    const out = {
      startedAt,
      finishedAt: new Date().toISOString(),
      host: { cpus: os.cpus().length, node: process.version, loadavgStart: loadStart, loadavgEnd: loadEnd },
      params: { vms: VMS, runs: RUNS, jobs: JOBS, reps: REPS, seed: SEED },
      estate: { ...figures, total: all.total, counts: all.counts, last24h: all.last24h },
      rssMiB: { built: mib(rssIdle), seeded: mib(rssSeeded), end: mib(rssEnd) },
      table,
      browser: inBrowser,
      diagnosis: {
        queriesAloneMs: parts,
        latestBackupsPlanMs: latest.ms,
        latestBackupsPlan: latest.plan,
        latestByScanBeforePlanMs: scan.ms,
        runsPage: { items: Number(runItems[0]!.items), disks: Number(runItems[0]!.disks) },
      },
    };
    const isDefault = VMS === 2000 && RUNS === 10000 && JOBS === 36;
    const file = isDefault ? path.join(here, 'overview.json') : path.join(here, 'work', `overview-${VMS}vms-${RUNS}runs.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
  } finally {
    await d?.close().catch((err: unknown) => console.error('closing the Director:', err));
    await d?.database.drop().catch((err: unknown) => console.error('dropping the database:', err));
    await lab?.stop().catch((err: unknown) => console.error('stopping the lab:', err));
  }
}

main()
  .catch((err: unknown) => {
    console.error((err as Error).stack ?? err);
    process.exitCode = 1;
  })
  .finally(() => setTimeout(() => process.exit(), 500).unref());
