#!/usr/bin/env node
// The front door: `npm start`, `npm test`, `npm run lab`, `npm run bench`.
// Plain Node with no dependencies, because its first job is to install them.
//
//   start  set up, then run the Director, the file-level restore helper and one
//          local Transporter (and the lab vCenter when no vCenter is configured) until Ctrl-C
//   test   set up, then lint, typecheck, every Vitest project and the browser tests
//   setup  only the set-up: dependencies, PostgreSQL and Redis, Prisma client, build
//   services  only PostgreSQL and Redis (started locally when not reachable), then stop them
//
// Set-up uses PostgreSQL and Redis at DATABASE_URL / REDIS_URL when reachable.
// Otherwise it starts project-local instances from Debian's packages (installing
// them when running as root), with data under .vaultline/services and
// non-default ports, and stops them when the command exits.

import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STATE = path.join(ROOT, '.vaultline');
const DATA = path.join(STATE, 'data');
const SERVICES = path.join(STATE, 'services');
const LOCAL_PG_PORT = 55432;
const LOCAL_REDIS_PORT = 56379;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const say = (msg) => process.stdout.write(`\x1b[1mvaultline\x1b[0m ${msg}\n`);
class SetupError extends Error {}

function fail(message) {
  process.stderr.write(`\nvaultline: ${message}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: opts.quiet ? 'pipe' : 'inherit', env: { ...process.env, ...opts.env }, encoding: 'utf8' });
  if (r.error) throw new SetupError(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) {
    const out = opts.quiet ? `\n${(r.stdout ?? '') + (r.stderr ?? '')}`.trimEnd() : '';
    throw new SetupError(`${[cmd, ...args].join(' ')} failed with exit code ${r.status}${out}`);
  }
  return r;
}

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const sha = (...files) => {
  const h = createHash('sha256');
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : '');
  return h.digest('hex');
};

// ---------------------------------------------------------------- dependencies

function ensureNode() {
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (maj < 20 || (maj === 20 && min < 19)) fail(`Node.js 20.19 or newer is needed; this is ${process.versions.node}.`);
}

function ensureDependencies() {
  mkdirSync(STATE, { recursive: true });
  const stamp = path.join(STATE, 'deps.sha256');
  const want = sha(path.join(ROOT, 'package-lock.json'), path.join(ROOT, 'package.json'));
  const haveModules = existsSync(path.join(ROOT, 'node_modules', '.package-lock.json'));
  if (haveModules && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  // A fresh clone gets exactly the lockfile (npm ci); an existing tree is brought
  // up to date in place, without wiping node_modules under running processes.
  say(haveModules ? 'updating dependencies (npm install)…' : 'installing dependencies (npm ci)…');
  run('npm', [haveModules ? 'install' : 'ci', '--no-audit', '--no-fund', '--loglevel=error']);
  writeFileSync(stamp, want);
}

function ensurePrismaClient() {
  const stamp = path.join(STATE, 'prisma.sha256');
  const schema = path.join(ROOT, 'prisma', 'schema.prisma');
  const want = sha(schema, path.join(ROOT, 'node_modules', 'prisma', 'package.json'));
  const generated = path.join(ROOT, 'packages', 'db', 'src', 'generated', 'client.ts');
  if (existsSync(generated) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  say('generating the Prisma client…');
  // generate never runs the schema engine, but looks for it; naming any existing
  // file stops it from trying to download one (this machine is offline).
  run(path.join(ROOT, 'node_modules', '.bin', 'prisma'), ['generate'], {
    quiet: true,
    env: { PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
  });
  writeFileSync(stamp, want);
}

function build() {
  const stamp = path.join(STATE, 'web.sha256');
  const webDir = path.join(ROOT, 'apps', 'web');
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(webDir);
  walk(path.join(ROOT, 'packages', 'contracts', 'src'));
  const want = sha(...files.sort());
  if (existsSync(path.join(webDir, 'dist', 'index.html')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  say('building the web console…');
  run(path.join(ROOT, 'node_modules', '.bin', 'turbo'), ['run', 'build', '--output-logs=errors-only'], { env: { TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' } });
  writeFileSync(stamp, want);
}

// ---------------------------------------------------------------- services

function tcpReachable(host, port, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

let aptUpdated = false;
function aptInstall(pkgs, why) {
  if (!isRoot || !have('apt-get')) {
    throw new SetupError(`${why}\n  Install it with: sudo apt-get install ${pkgs.join(' ')}   (or point the URL at a running server)`);
  }
  say(`installing ${pkgs.join(', ')} from Debian's packages…`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq'], { quiet: true, env, allowFail: true });
    aptUpdated = true;
  }
  // policy-rc.d keeps the package from starting a system-wide service of its own.
  const policy = '/usr/sbin/policy-rc.d';
  const hadPolicy = existsSync(policy);
  if (!hadPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { quiet: true, env });
  } finally {
    if (!hadPolicy) rmSync(policy, { force: true });
  }
}

function findPgBin() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(base, versions[0], 'bin') : null;
}

const stops = [];

async function startLocalPostgres() {
  let bin = findPgBin();
  if (!bin) {
    aptInstall(['postgresql'], 'PostgreSQL is not reachable and not installed.');
    bin = findPgBin();
    if (!bin) throw new SetupError('PostgreSQL was installed but its initdb was not found under /usr/lib/postgresql');
  }
  const dir = path.join(SERVICES, 'postgres');
  const sock = path.join(SERVICES, 'pg-socket');
  mkdirSync(SERVICES, { recursive: true, mode: 0o755 });
  mkdirSync(sock, { recursive: true });
  // initdb refuses to run as root: the cluster belongs to the postgres user.
  const asPg = isRoot ? (cmd, args) => ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : (cmd, args) => [cmd, args];
  if (isRoot) {
    mkdirSync(dir, { recursive: true });
    for (const p of [dir, sock]) run('chown', ['-R', 'postgres:postgres', p], { quiet: true });
  }
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    say('creating a project-local PostgreSQL cluster…');
    const [c, a] = asPg(path.join(bin, 'initdb'), ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    run(c, a, { quiet: true });
  }
  const log = path.join(SERVICES, 'postgres.log');
  if (isRoot && !existsSync(log)) {
    writeFileSync(log, '');
    run('chown', ['postgres:postgres', log], { quiet: true });
  }
  const [c, a] = asPg(path.join(bin, 'pg_ctl'), ['-D', dir, '-l', log, '-w', '-t', '30', '-o', `-p ${LOCAL_PG_PORT} -c listen_addresses=127.0.0.1 -k ${sock}`, 'start']);
  run(c, a, { quiet: true });
  stops.push(() => {
    const [c2, a2] = asPg(path.join(bin, 'pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop']);
    spawnSync(c2, a2, { stdio: 'ignore' });
  });
  say(`started a project-local PostgreSQL on 127.0.0.1:${LOCAL_PG_PORT} (data in .vaultline/services/postgres)`);
}

async function startLocalRedis() {
  if (!have('redis-server')) aptInstall(['redis-server'], 'Redis is not reachable and not installed.');
  mkdirSync(SERVICES, { recursive: true });
  const pidfile = path.join(SERVICES, 'redis.pid');
  run('redis-server', ['--port', String(LOCAL_REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', pidfile, '--dir', SERVICES, '--logfile', path.join(SERVICES, 'redis.log')], { quiet: true });
  for (let i = 0; i < 50 && !(await tcpReachable('127.0.0.1', LOCAL_REDIS_PORT, 200)); i++) await new Promise((r) => setTimeout(r, 100));
  stops.push(() => {
    try {
      process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGTERM');
    } catch {
      /* already gone */
    }
  });
  say(`started a project-local Redis on 127.0.0.1:${LOCAL_REDIS_PORT}`);
}

/** Resolves DATABASE_URL (the server; the app's database name is kept) and REDIS_URL. */
async function ensureServices() {
  const dbUrl = new URL(process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/vaultline');
  const redisUrl = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
  if (!(await tcpReachable(dbUrl.hostname, Number(dbUrl.port || 5432)))) {
    say(`PostgreSQL is not reachable at ${dbUrl.hostname}:${dbUrl.port || 5432}; starting a project-local one`);
    await startLocalPostgres();
    dbUrl.hostname = '127.0.0.1';
    dbUrl.port = String(LOCAL_PG_PORT);
    dbUrl.username = 'postgres';
    dbUrl.password = '';
  }
  if (!(await tcpReachable(redisUrl.hostname, Number(redisUrl.port || 6379)))) {
    say(`Redis is not reachable at ${redisUrl.hostname}:${redisUrl.port || 6379}; starting a project-local one`);
    await startLocalRedis();
    redisUrl.hostname = '127.0.0.1';
    redisUrl.port = String(LOCAL_REDIS_PORT);
  }
  return { databaseUrl: dbUrl.toString(), redisUrl: redisUrl.toString() };
}

function stopServices() {
  while (stops.length) {
    try {
      stops.pop()();
    } catch {
      /* best effort */
    }
  }
}

async function setup() {
  ensureNode();
  ensureDependencies();
  ensurePrismaClient();
  const services = await ensureServices();
  build();
  return services;
}

// ---------------------------------------------------------------- commands

const tsx = (file, args = [], opts = {}) =>
  spawn(process.execPath, ['--import', 'tsx', file, ...args], { cwd: ROOT, stdio: opts.stdio ?? 'inherit', env: { ...process.env, ...opts.env } });

/** The SHA-256 fingerprint of the certificate in this PEM file, or null while there is none. */
function fingerprintOf(certFile) {
  try {
    return new X509Certificate(readFileSync(certFile)).fingerprint256;
  } catch {
    return null;
  }
}

/** GET over TLS, answering the status and the fingerprint of the certificate the server showed. */
function probe(url) {
  return new Promise((resolve, reject) => {
    // The certificate is self-signed: it is compared with the one on disk instead of a CA.
    const req = https.get(url, { rejectUnauthorized: false, agent: false, timeout: 5_000 }, (res) => {
      const fingerprint = res.socket.getPeerCertificate().fingerprint256;
      res.resume();
      resolve({ status: res.statusCode, fingerprint });
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
  });
}

/** Waits until the Director answers /api/health over TLS with the certificate in certFile; returns its fingerprint, or null. */
async function waitForHealth(url, child, certFile, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) return null;
    try {
      const res = await probe(`${url}/api/health`);
      if ((res.status === 200 || res.status === 503) && res.fingerprint === fingerprintOf(certFile)) return res.fingerprint;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return null;
}

/**
 * Starts vaultline-flr, the file-level restore helper, next to a Director with environment `env`: in a
 * private mount namespace when root (unshare), sharing the Director's run directory. Its environment
 * names no data directory, database or key.
 */
function startFlrHelper(env) {
  const helperEnv = {
    PATH: process.env.PATH,
    NODE_ENV: env.NODE_ENV,
    VAULTLINE_FLR_RUN_DIR: env.VAULTLINE_FLR_RUN_DIR,
    VAULTLINE_FLR_STATE_DIR: process.env.VAULTLINE_FLR_STATE_DIR || path.join(STATE, 'flr-state'),
    ...(process.env.VAULTLINE_LOG_LEVEL ? { VAULTLINE_LOG_LEVEL: process.env.VAULTLINE_LOG_LEVEL } : {}),
  };
  const node = [process.execPath, '--import', 'tsx', 'packages/flr/src/helper/main.ts'];
  const argv = isRoot ? ['unshare', '--mount', '--propagation', 'private', '--', ...node] : node;
  return spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: helperEnv });
}

const LAB_CLI = 'packages/vsphere-lab/src/cli.ts';

/** Starts the lab vCenter (detached) and returns its state; registers its stop. */
function startLab() {
  const r = spawnSync(process.execPath, ['--import', 'tsx', LAB_CLI, 'up', '--demo', ...(isRoot ? ['--san'] : [])], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new SetupError(`the lab vCenter did not start (exit code ${r.status}); set VAULTLINE_LAB=0 to start without it`);
  const json = r.stdout.slice(r.stdout.indexOf('{'));
  stops.push(() => spawnSync(process.execPath, ['--import', 'tsx', LAB_CLI, 'down'], { cwd: ROOT, stdio: 'ignore' }));
  return JSON.parse(json);
}

/**
 * Keeps the local Transporter running: when it dies it is started again after 1 s, the wait doubling
 * (to 30 s at most) while it keeps dying within a minute of starting. What it was doing is picked up
 * again once its queue lock (30 s) has run out, by it or by another Transporter.
 */
function superviseTransporter(env, children, stopping) {
  let delay = 1_000;
  const launch = () => {
    const child = tsx('apps/transporter/src/main.ts', [], { env });
    const startedAt = Date.now();
    children.push(child);
    child.once('exit', (code, signal) => {
      children.splice(children.indexOf(child), 1);
      if (stopping()) return;
      if (Date.now() - startedAt > 60_000) delay = 1_000;
      process.stderr.write(`vaultline: the local Transporter stopped (${signal ?? `exit code ${code}`}); starting it again in ${delay / 1000} s (its unfinished work is picked up again once its queue lock runs out)\n`);
      setTimeout(() => {
        if (!stopping()) launch();
      }, delay);
      delay = Math.min(delay * 2, 30_000);
    });
  };
  launch();
}

async function start() {
  const { databaseUrl, redisUrl } = await setup();
  const port = process.env.VAULTLINE_PORT || '8080';
  const host = process.env.VAULTLINE_HOST || '127.0.0.1';
  const env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    VAULTLINE_DATA_DIR: process.env.VAULTLINE_DATA_DIR || DATA,
    VAULTLINE_PORT: port,
    VAULTLINE_HOST: host,
    NODE_ENV: process.env.NODE_ENV || 'production',
    // Shared by the Director and the file-level restore helper (its socket and token, the NBD sockets).
    VAULTLINE_FLR_RUN_DIR: process.env.VAULTLINE_FLR_RUN_DIR || path.join(STATE, 'flr-run'),
  };
  const children = [];
  let stopping = false;
  const shutdown = (code) => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    const wait = children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r))));
    Promise.race([Promise.all(wait), new Promise((r) => setTimeout(r, 10_000))]).then(() => {
      stopServices();
      process.exit(code);
    });
  };
  process.on('SIGINT', () => shutdown(0));
  process.on('SIGTERM', () => shutdown(0));

  // No vCenter configured: start the lab vCenter with its demo inventory, so a
  // new user has VMs to back up at once. The Director registers it at start.
  let transporterEnv = {};
  if (!process.env.VAULTLINE_VCENTER_URL && process.env.VAULTLINE_LAB !== '0') {
    say('no vCenter configured (VAULTLINE_VCENTER_URL): starting the lab vCenter with a demo inventory…');
    const lab = startLab();
    env.VAULTLINE_VCENTER_URL = lab.url;
    env.VAULTLINE_VCENTER_USER = lab.username;
    env.VAULTLINE_VCENTER_PASSWORD = lab.password;
    env.VAULTLINE_VCENTER_THUMBPRINT = lab.thumbprintSha256;
    env.VAULTLINE_VCENTER_LAB = '1';
    transporterEnv = { VAULTLINE_PROXY_VM_UUID: lab.proxyVm.biosUuid, VAULTLINE_DEVICE_BY_ID_DIR: lab.byIdDir };
    say(`lab vCenter at ${lab.url} (${lab.datastores.length} datastores, proxy VM ${lab.proxyVm.name})`);
  }

  // File-level restore's helper: the only process that mounts guest filesystems, in a mount namespace of
  // its own (as root; otherwise it runs and the console says why it cannot mount). Its environment holds
  // no database address and no key: it reads disks from the Director's NBD sockets only.
  const helper = startFlrHelper(env);
  children.push(helper);
  helper.once('exit', (code) => {
    if (!stopping) process.stderr.write(`vaultline: the file-level restore helper stopped (exit code ${code}); browsing restore points answers 503 until it runs again\n`);
  });

  const director = tsx('apps/director/src/server.ts', [], { env });
  children.push(director);
  director.once('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`vaultline: the Director stopped (exit code ${code})\n`);
      shutdown(code || 1);
    }
  });
  const url = `https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  // The Director serves the operator's certificate, or the self-signed one it makes in its data dir.
  const certFile = process.env.VAULTLINE_TLS_CERT || path.join(env.VAULTLINE_DATA_DIR, 'tls', 'cert.pem');
  const fingerprint = await waitForHealth(url, director, certFile);
  if (!fingerprint) {
    if (!stopping) shutdown(1);
    return;
  }
  superviseTransporter({ ...env, ...transporterEnv, VAULTLINE_TRANSPORTER_NAME: process.env.VAULTLINE_TRANSPORTER_NAME || 'local' }, children, () => stopping);

  const firstLogin = path.join(env.VAULTLINE_DATA_DIR, 'first-login.txt');
  say('');
  say(`is up: \x1b[1m${url}\x1b[0m`);
  say(`TLS certificate SHA-256: ${fingerprint}`);
  if (!process.env.VAULTLINE_TLS_CERT) say('  (self-signed: your browser warns once; check it shows this fingerprint, then accept it)');
  if (existsSync(firstLogin)) {
    say('first login (you will be asked to choose a new password):');
    for (const line of readFileSync(firstLogin, 'utf8').trim().split('\n')) say(`    ${line}`);
  } else {
    say('sign in with your admin account');
  }
  say('press Ctrl-C to stop');
}

/** A terminal colour code (ESC [ … m), built from its character code: a regex literal would hold a control character. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
/** The first line of a failure message, without colour codes, at most 300 characters. */
const firstLine = (m) => String(m ?? '').replace(ANSI_COLOUR, '').split('\n').find((l) => l.trim())?.trim().slice(0, 300) ?? '';

function parseVitestJson(file) {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    const failures = [];
    for (const f of j.testResults ?? []) {
      for (const t of f.assertionResults ?? []) {
        if (t.status === 'failed') failures.push({ where: `${path.relative(ROOT, f.name)} > ${t.fullName}`, why: firstLine(t.failureMessages?.[0]) });
      }
      // A file that failed before any test ran (import error, hook failure).
      if (f.status === 'failed' && !(f.assertionResults ?? []).some((t) => t.status === 'failed')) failures.push({ where: path.relative(ROOT, f.name), why: firstLine(f.message) });
    }
    return { passed: j.numPassedTests ?? 0, failed: j.numFailedTests ?? 0, skipped: (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0), failures };
  } catch {
    return null;
  }
}

function parsePlaywrightJson(file) {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    const failures = [];
    const walk = (suite, trail) => {
      for (const spec of suite.specs ?? []) {
        for (const t of spec.tests ?? []) {
          if (t.status === 'unexpected' || t.status === 'flaky') {
            const err = t.results?.find((r) => r.status !== 'passed')?.error?.message;
            failures.push({ where: `${[...trail, spec.title].join(' > ')}${t.status === 'flaky' ? ' (flaky: passed on retry)' : ''}`, why: firstLine(err) });
          }
        }
      }
      for (const s of suite.suites ?? []) walk(s, [...trail, s.title]);
    };
    for (const s of j.suites ?? []) walk(s, [s.title]);
    return { passed: j.stats?.expected ?? 0, failed: (j.stats?.unexpected ?? 0) + (j.stats?.flaky ?? 0), skipped: j.stats?.skipped ?? 0, failures };
  } catch {
    return null;
  }
}

function ensureChromium() {
  if (existsSync('/usr/bin/chromium')) return;
  aptInstall(['chromium'], 'The browser tests need Debian\'s chromium (/usr/bin/chromium).');
}

function ensureQemuImg() {
  if (have('qemu-img')) return;
  aptInstall(['qemu-utils'], 'The VMDK and lab tests check disk images with an independent reader, qemu-img (qemu-utils).');
}

/** What `npm test -- delivery` runs besides Node: debootstrap, QEMU, podman and the image tools. */
const DELIVERY_TOOLS = [
  ['debootstrap', 'debootstrap'],
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['podman', 'podman'],
  ['runc', 'runc'],
  ['mcopy', 'mtools'],
  ['mkfs.fat', 'dosfstools'],
  ['sfdisk', 'fdisk'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['ssh', 'openssh-client'],
  ['psql', 'postgresql-client'],
];

function ensureDeliveryTools() {
  if (!isRoot) throw new SetupError('the delivery tests need root (debootstrap, chroot, mounts, podman)');
  const missing = [...new Set(DELIVERY_TOOLS.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  // UEFI firmware for the EFI boot of the appliance.
  if (!existsSync('/usr/share/ovmf/OVMF.fd')) missing.push('ovmf');
  if (missing.length) aptInstall(missing, `The delivery tests need ${missing.join(', ')}.`);
}

async function test(args) {
  const { databaseUrl, redisUrl } = await setup();
  const only = args[0];
  if (only === 'delivery') ensureDeliveryTools();
  // Build the lab vCenter once, before tests start it (a cold Go build takes about a minute).
  say('building the lab vCenter (cached after the first time)…');
  run(process.execPath, ['--import', 'tsx', LAB_CLI, 'build'], { quiet: true });
  // Tests make their own databases on this server; they connect to its `postgres` database.
  const server = new URL(databaseUrl);
  server.pathname = '/postgres';
  const env = { DATABASE_URL: server.toString(), REDIS_URL: redisUrl, NODE_ENV: 'test' };
  const reports = path.join(STATE, 'reports');
  mkdirSync(reports, { recursive: true });
  const results = [];
  const step = (name, cmd, cmdArgs, extraEnv = {}) => {
    say(`— ${name}`);
    const r = spawnSync(cmd, cmdArgs, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env, ...extraEnv } });
    results.push({ name, ok: r.status === 0 });
    return r.status === 0;
  };
  const bin = (n) => path.join(ROOT, 'node_modules', '.bin', n);
  if (!only || only === 'lint') step('lint (ESLint, import boundaries)', bin('eslint'), ['.', '--max-warnings=0']);
  if (!only || only === 'typecheck') step('typecheck (tsc, every workspace)', bin('turbo'), ['run', 'typecheck', '--output-logs=errors-only'], { TURBO_TELEMETRY_DISABLED: '1' });
  let unit = null;
  if (!only || only === 'unit') {
    ensureQemuImg();
    const out = path.join(reports, 'vitest.json');
    rmSync(out, { force: true });
    step('unit and integration tests (Vitest, real Postgres/Redis/lab)', bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...args.slice(only ? 1 : 0)]);
    unit = parseVitestJson(out);
    results.at(-1).counts = unit;
  }
  let e2e = null;
  if (!only || only === 'e2e') {
    ensureChromium();
    const out = path.join(reports, 'playwright.json');
    rmSync(out, { force: true });
    step('browser tests (Playwright + Debian chromium)', bin('playwright'), ['test', '-c', 'e2e/playwright.config.ts'], { PLAYWRIGHT_JSON_OUTPUT_NAME: out });
    e2e = parsePlaywrightJson(out);
    results.at(-1).counts = e2e;
  }
  // Last, being the slowest: the OVA appliance and the Docker image, built and run for real (needs root).
  let delivery = null;
  if (!only && !isRoot) say('delivery tests (OVA appliance, Docker image) not run: they need root (debootstrap, chroot, QEMU, podman)');
  if ((!only && isRoot) || only === 'delivery') {
    if (!only) ensureDeliveryTools();
    const out = path.join(reports, 'delivery.json');
    rmSync(out, { force: true });
    step('delivery: the OVA appliance booted in QEMU, the Docker image run with podman', bin('vitest'), ['run', '-c', 'packages/delivery/vitest.delivery.config.ts', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...args.slice(1)]);
    delivery = parseVitestJson(out);
    results.at(-1).counts = delivery;
  }
  stopServices();
  say('');
  for (const r of results) {
    say(`${r.ok ? '\x1b[32m✔\x1b[0m' : '\x1b[31m✘\x1b[0m'} ${r.name}`);
    // Named again here, at the end, where a log cut to its last lines still shows them.
    for (const f of r.counts?.failures ?? []) say(`    ✘ ${f.where}${f.why ? `\n        ${f.why}` : ''}`);
  }
  const total = [unit, e2e, delivery].filter(Boolean).reduce((a, b) => ({ passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: a.skipped + b.skipped }), { passed: 0, failed: 0, skipped: 0 });
  const stepFailures = results.filter((r) => !r.ok).length;
  // A failed step whose runner reported no failed test (lint, typecheck, a crash) counts as one failure.
  const otherFailures = results.filter((r) => !r.ok && !(r.counts?.failed > 0)).length;
  process.stdout.write(`\nTests: ${total.passed} passed, ${total.failed + otherFailures} failed, ${total.skipped} skipped\n`);
  process.exit(stepFailures ? 1 : 0);
}

async function passThrough(file, args, needsServices) {
  const env = needsServices ? await (async () => {
    const { databaseUrl, redisUrl } = await setup();
    return { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl };
  })() : (ensureNode(), ensureDependencies(), {});
  if (!existsSync(path.join(ROOT, file))) fail(`${file} does not exist yet`);
  const child = tsx(file, args, { env });
  child.once('exit', (code) => {
    stopServices();
    process.exit(code ?? 1);
  });
}

const [command = 'start', ...rest] = process.argv.slice(2);
const main = {
  start: () => start(),
  test: () => test(rest),
  setup: async () => {
    const s = await setup();
    say(`ready: DATABASE_URL=${s.databaseUrl.replace(/\/\/[^@]*@/, '//***@')} REDIS_URL=${s.redisUrl}`);
    stopServices();
  },
  // Only PostgreSQL and Redis: used by the front-door test, and handy to check a machine.
  services: async () => {
    const s = await ensureServices();
    say(`ready: DATABASE_URL=${s.databaseUrl.replace(/\/\/[^@]*@/, '//***@')} REDIS_URL=${s.redisUrl}`);
    stopServices();
  },
  // Delivery formats (packages/delivery): the OVA appliance; the app staged as the images hold it.
  'build-ova': () => {
    ensureNode();
    ensureDependencies();
    ensurePrismaClient();
    build();
    return passThrough('packages/delivery/src/cli.ts', ['build-ova', ...rest], false);
  },
  lab: () => passThrough('packages/vsphere-lab/src/cli.ts', rest, false),
  // `npm run bench -- transports ...`: the transport benchmark (bench/transports.ts) drives the Transporter against
  // the lab and needs PostgreSQL (a server URL: it creates and drops its own database); else the repository benchmark.
  bench: async () => {
    if (rest[0] !== 'transports') return passThrough('bench/run.ts', rest, false);
    const server = new URL((await ensureServices()).databaseUrl);
    server.pathname = '/postgres';
    process.env.DATABASE_URL = server.toString();
    return passThrough('bench/transports.ts', rest.slice(1), false);
  },
  // The CLI pins the certificate of the Director that `npm start` runs (read from its data dir).
  cli: () => {
    process.env.VAULTLINE_DATA_DIR ||= DATA;
    return passThrough('apps/cli/src/main.ts', rest, false);
  },
}[command];
if (!main) fail(`unknown command "${command}"; use start, test, setup, services, build-ova, lab, bench or cli`);
main().catch((err) => {
  stopServices();
  if (err instanceof SetupError) fail(err.message);
  fail(err?.stack ?? String(err));
});
process.on('exit', stopServices);
