// `npm start`: set up, then run the Director, the file-level restore helper and one local Transporter
// (and the lab vCenter when no vCenter is configured) until Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { aptInstall } from '../lib/apt.mjs';
import { SetupError, say } from '../lib/output.mjs';
import { DATA, LAB_CLI, ROOT, STATE, isRoot } from '../lib/paths.mjs';
import { have, stopServices, stops, tsx } from '../lib/processes.mjs';
import { setup } from '../lib/setup.mjs';

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

/** Waits (up to 60 s) until the Director's public health counts a Transporter online; false when none did. */
async function waitForTransporter(url, stopping, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && !stopping()) {
    const online = await new Promise((resolve) => {
      const req = https.get(`${url}/api/health`, { rejectUnauthorized: false, agent: false, timeout: 5_000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body).transporters?.online ?? 0);
          } catch {
            resolve(0);
          }
        });
      });
      req.once('timeout', () => req.destroy(new Error('timeout')));
      req.once('error', () => resolve(0));
    });
    if (online > 0) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
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

/**
 * What the file-level restore helper mounts with (the OVA and the Docker image install the same): as root,
 * installed when missing, so Browse files works on the demo VM file-01's NTFS and ext4 partitions at once.
 * A failed install only warns: the helper then answers 503 naming what is missing.
 */
function ensureFlrTools() {
  const missing = [...new Set([['nbdfuse', 'libnbd-bin'], ['fusermount3', 'fuse3'], ['ntfs-3g', 'ntfs-3g']].filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  if (!isRoot || missing.length === 0) return;
  try {
    aptInstall(missing, `Browse files (file-level restore) needs ${missing.join(', ')}.`);
  } catch (e) {
    process.stderr.write(`vaultline: could not install ${missing.join(', ')} (${e.message}); Browse files answers 503 until they are installed\n`);
  }
}

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

export async function start() {
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
  // The terminal gets readable lines at VAULTLINE_LOG_LEVEL; each process also appends everything from debug
  // up, as JSON, to a file of its own (what a support request needs).
  const logDir = process.env.VAULTLINE_LOG_DIR || path.join(STATE, 'logs');
  const logFile = (name) => path.join(logDir, `${name}.log`);
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
  ensureFlrTools();
  const helper = startFlrHelper(env);
  children.push(helper);
  helper.once('exit', (code) => {
    if (!stopping) process.stderr.write(`vaultline: the file-level restore helper stopped (exit code ${code}); browsing restore points answers 503 until it runs again\n`);
  });

  const director = tsx('apps/director/src/server.ts', [], { env: { ...env, VAULTLINE_LOG_FILE: logFile('director') } });
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
  superviseTransporter({ ...env, ...transporterEnv, VAULTLINE_TRANSPORTER_NAME: process.env.VAULTLINE_TRANSPORTER_NAME || 'local', VAULTLINE_LOG_FILE: logFile('transporter') }, children, () => stopping);
  // The address and the first login come last, once the Transporter is up, so its start-up lines do not bury them.
  const transporterUp = await waitForTransporter(url, () => stopping);
  if (stopping) return;

  const firstLogin = path.join(env.VAULTLINE_DATA_DIR, 'first-login.txt');
  say('');
  say(`is up: \x1b[1m${url}\x1b[0m`);
  say(`TLS certificate SHA-256: ${fingerprint}`);
  if (!process.env.VAULTLINE_TLS_CERT) say('  (self-signed: your browser warns once; check it shows this fingerprint, then accept it)');
  if (!transporterUp) say('the local Transporter has not reported in yet: backups wait for it (see its lines above)');
  say(`logs (JSON, debug and up): ${logDir}`);
  if (existsSync(firstLogin)) {
    say('first login (you will be asked to choose a new password):');
    for (const line of readFileSync(firstLogin, 'utf8').trim().split('\n')) say(`    ${line}`);
  } else {
    say('sign in with your admin account');
  }
  say('press Ctrl-C to stop');
}
