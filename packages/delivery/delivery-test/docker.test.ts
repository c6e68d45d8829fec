/**
 * docker/Dockerfile built with podman from a local Debian 12 + Node 20 base
 * (no registry is reachable here), then run the way docker/compose.yml runs
 * it: the Director (as the user vaultline, without capabilities), the
 * file-level restore helper (only CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH, no
 * data volume) and a privileged Transporter sharing the data volume, with
 * compose's environment and settings, against this machine's PostgreSQL and
 * Redis (a database and a Redis namespace of their own).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnv } from '@vaultline/config';
import { SELF_SIGNED_CERT, certificateFingerprint, pinnedFetch, type PinnedRequest } from '@vaultline/tls';
import { buildImage, localNodeBase, podman, type Podman } from '../src/containers.ts';
import { run, stepLogger } from '../src/exec.ts';
import { freePort } from '@vaultline/config';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MIN = 60_000;
/** The Director's certificate, as its log names it (set once the Director has started). */
let fingerprint = '';
/** fetch over TLS pinned to that certificate, with a time limit: a request can otherwise hang for good. */
const http = (input: string, init: PinnedRequest = {}) => pinnedFetch(fingerprint)(input, { ...init, signal: AbortSignal.timeout(20_000) });
const TAG = 'localhost/vaultline:delivery-test';
const SERVER = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  privileged?: boolean;
  devices?: string[];
  user?: string;
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  device_cgroup_rules?: string[];
  ports?: string[];
  depends_on?: string[];
}
const compose = load(readFileSync(path.join(ROOT, 'docker/compose.yml'), 'utf8')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };

let pm: Podman;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vaultline-docker-test-'));
const suffix = `${process.pid}_${Date.now().toString(36)}`;
const dbName = `vaultline_docker_${suffix}`;
const namespace = `vl-docker-${suffix}`;
const names = { director: `vl-director-${suffix}`, flr: `vl-flr-${suffix}`, transporter: `vl-transporter-${suffix}` };
let port: number;
let url: string;
/** Each named volume of compose.yml is a host folder of its own: tmp/<volume name>. */
const volumeDir = (name: string) => path.join(tmp, name);
const dataDir = volumeDir('data');
let cookie = '';

beforeAll(async () => {
  const step = stepLogger('docker test:', (s) => process.stderr.write(s));
  const cacheDir = path.join(ROOT, 'ova-build/.cache');
  pm = await podman(cacheDir);
  const base = await localNodeBase({ cacheDir, step, podman: pm });
  await buildImage({ rootDir: ROOT, base, tag: TAG, podman: pm, step });
  port = await freePort();
  url = `https://127.0.0.1:${port}`;
  for (const v of Object.keys(compose.volumes)) mkdirSync(volumeDir(v), { recursive: true });
}, 60 * MIN);

afterAll(async () => {
  for (const n of Object.values(names)) await pm?.run(['rm', '-f', '-t', '5', n], { allowFail: true });
  const admin = new URL(SERVER);
  admin.pathname = '/postgres';
  await run('psql', [admin.toString(), '-q', '-c', `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`], { allowFail: true });
  rmSync(tmp, { recursive: true, force: true });
}, 2 * MIN);

/** compose's settings of a service, as `podman run` arguments (network, database and Redis pointed at this machine's). */
function runArgs(service: 'director' | 'flr' | 'transporter', name: string, extraEnv: Record<string, string>): string[] {
  const svc = compose.services[service]!;
  const db = new URL(SERVER);
  db.pathname = `/${dbName}`;
  // Only services that talk to the database get this machine's (the helper has none).
  const services: Record<string, string> = svc.environment?.DATABASE_URL ? { DATABASE_URL: db.toString(), REDIS_URL: REDIS, VAULTLINE_REDIS_NAMESPACE: namespace, VAULTLINE_PORT: String(port) } : {};
  const env: Record<string, string> = { ...svc.environment, ...services, ...extraEnv };
  const args = ['run', '-d', '--name', name, '--network', 'host'];
  for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
  for (const v of svc.volumes ?? []) {
    const [src, dest] = v.split(':') as [string, string];
    // Named volumes become host folders shared like compose's volumes; host paths stay.
    args.push('-v', `${src.startsWith('/') ? src : volumeDir(src)}:${dest}`);
  }
  if (svc.privileged) args.push('--privileged');
  if (svc.user) args.push('--user', svc.user);
  for (const c of svc.cap_drop ?? []) args.push('--cap-drop', c);
  for (const c of svc.cap_add ?? []) args.push('--cap-add', c);
  for (const o of svc.security_opt ?? []) args.push('--security-opt', o);
  for (const r of svc.device_cgroup_rules ?? []) args.push('--device-cgroup-rule', r);
  for (const d of svc.devices ?? []) args.push('--device', d);
  return [...args, TAG, ...(svc.command ?? [])];
}

describe('docker/compose.yml', () => {
  it('runs the one image in both roles, shares the data volume, and gives every Vaultline setting a valid value', () => {
    const { director, flr, transporter, postgres, redis } = compose.services;
    expect(director?.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
    expect(transporter?.image).toBe(director?.image);
    expect(flr?.image).toBe(director?.image);
    expect(director?.command).toEqual(['director']);
    expect(transporter?.command).toEqual(['transporter']);
    expect(flr?.command).toEqual(['flr']);
    expect(director?.volumes).toContain('data:/var/lib/vaultline');
    expect(transporter?.volumes).toContain('data:/var/lib/vaultline');
    expect(transporter?.privileged).toBe(true);
    // File-level restore: the Director is not privileged and mounts nothing; the helper has two
    // capabilities, shares only the run directory with the Director, and never sees the data volume.
    expect(director?.privileged).toBeUndefined();
    expect(director?.devices).toBeUndefined();
    expect(director?.volumes).toContain('flr-run:/run/vaultline-flr');
    expect(flr?.privileged).toBeUndefined();
    expect(flr?.cap_drop).toEqual(['ALL']);
    expect(flr?.cap_add).toEqual(['SYS_ADMIN', 'DAC_READ_SEARCH']);
    expect(flr?.volumes).toContain('flr-run:/run/vaultline-flr');
    expect(flr?.volumes?.some((v) => v.startsWith('data:'))).toBe(false);
    expect(flr?.environment).toEqual({ VAULTLINE_FLR_RUN_DIR: '/run/vaultline-flr', VAULTLINE_FLR_STATE_DIR: '/var/lib/vaultline-flr' });
    expect(director?.environment?.VAULTLINE_FLR_RUN_DIR).toBe('/run/vaultline-flr');
    expect(director?.ports).toEqual(['8080:8080']);
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(['data', 'pgdata']));
    expect(postgres?.image).toMatch(/^postgres:/);
    expect(redis?.image).toMatch(/^redis:/);
    // The same parser the processes use at start: a bad value would stop them (exit code 2).
    for (const svc of [director!, transporter!]) {
      const env = loadEnv({ ...svc.environment, NODE_ENV: 'production', VAULTLINE_HOST: '0.0.0.0' });
      expect(new URL(env.DATABASE_URL).hostname).toBe('postgres');
      expect(new URL(env.REDIS_URL).hostname).toBe('redis');
      expect(env.VAULTLINE_DATA_DIR).toBe('/var/lib/vaultline');
    }
  });
});

describe('the Docker image, run with podman', () => {
  it('has the disk and filesystem tools of the Transporter, of file-level restore and of restores to KVM (qemu-img), and Node 20', async () => {
    const r = await pm.run(['run', '--rm', '--entrypoint', '/bin/sh', TAG, '-c', 'for t in tini nbdfuse fusermount3 ntfs-3g losetup mount blkid blockdev vmfs-fuse vmfs6-fuse qemu-img; do command -v $t >/dev/null || echo missing $t; done; node --version; test -d /opt/vaultline/node_modules/typescript && echo has-dev-deps || true']);
    expect(r.stdout).toBe(`${process.version}\n`);
  }, 2 * MIN);

  it('starts the Director, which creates its database and certificate, answers /api/health over HTTPS with PostgreSQL and Redis and serves the console', async () => {
    await pm.run(runArgs('director', names.director, {}));
    let health: { ok: boolean; postgres: { ok: boolean }; redis: { ok: boolean }; transporters: { online: number } } | undefined;
    const end = Date.now() + 3 * MIN;
    while (Date.now() < end) {
      // The fingerprint an operator reads in `docker logs`, then pins.
      const log = await pm.run(['logs', names.director], { allowFail: true });
      fingerprint ||= /TLS certificate SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})/.exec(log.stdout + log.stderr)?.[1] ?? '';
      health = fingerprint ? await http(`${url}/api/health`).then((r) => r.json() as Promise<typeof health>, () => undefined) : undefined;
      if (health) break;
      const state = (await pm.run(['inspect', '-f', '{{.State.Status}}', names.director])).stdout.trim();
      if (state !== 'running') throw new Error(`the Director container is ${state}: ${(await pm.run(['logs', names.director], { allowFail: true })).stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(health).toMatchObject({ postgres: { ok: true }, redis: { ok: true } });
    // Self-signed, made in the data volume at first start: the logged fingerprint is that certificate's.
    expect(certificateFingerprint(readFileSync(path.join(dataDir, SELF_SIGNED_CERT), 'utf8'))).toBe(fingerprint);
    // Plain HTTP on the same port only redirects.
    const plain = await fetch(`http://127.0.0.1:${port}/api/health`, { redirect: 'manual', signal: AbortSignal.timeout(20_000) });
    expect(plain.status).toBe(301);
    expect(plain.headers.get('location')).toBe(`${url}/api/health`);
    const page = await http(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<div id="root">/);
    // The one-time password is in the data volume (mode 0600), not in the container's log.
    const first = readFileSync(path.join(dataDir, 'first-login.txt'), 'utf8');
    const password = /password: (\S+)/.exec(first)![1]!;
    const logs = await pm.run(['logs', names.director]);
    expect(logs.stdout + logs.stderr).not.toContain(password);
    const login = await http(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
    expect(await login.json()).toMatchObject({ mustChangePassword: true });
    cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    expect(cookie).toMatch(/^__Host-vl_session=/);
    const changed = await http(`${url}/api/auth/change-password`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: password, newPassword: 'docker-test-password' }) });
    expect(changed.status).toBe(200);
  }, 4 * MIN);

  it('starts the file-level restore helper with two capabilities and no data volume; the Director runs as vaultline without any and reaches it', async () => {
    await pm.run(runArgs('flr', names.flr, {}));
    const token = path.join(volumeDir('flr-run'), 'token');
    const end = Date.now() + 2 * MIN;
    while (Date.now() < end && !existsSync(token)) {
      const state = (await pm.run(['inspect', '-f', '{{.State.Status}}', names.flr])).stdout.trim();
      if (state !== 'running') throw new Error(`the helper container is ${state}: ${(await pm.run(['logs', names.flr], { allowFail: true })).stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(existsSync(token)).toBe(true);
    // The Director process (tini's child): the user vaultline (10001) with no capability at all.
    const director = await pm.run(['exec', names.director, 'sh', '-c', 'p=$(cut -d" " -f1 /proc/1/task/1/children); tr "\\0" " " < /proc/$p/cmdline; echo; grep -E "^(Uid|CapEff):" /proc/$p/status']);
    expect(director.stdout).toContain('apps/director/src/server.ts');
    expect(director.stdout).toMatch(/^Uid:\s+10001\s/m);
    expect(director.stdout).toMatch(/^CapEff:\s+0000000000000000$/m);
    // The helper (tini's child): root with CAP_SYS_ADMIN (21) and CAP_DAC_READ_SEARCH (2) only; no key, no database.
    const helper = await pm.run(['exec', names.flr, 'sh', '-c', 'p=$(cut -d" " -f1 /proc/1/task/1/children); grep -E "^CapEff:" /proc/$p/status; test -e /var/lib/vaultline/secret.key && echo has-key || echo no-key; env | grep -c DATABASE_URL || true']);
    expect(helper.stdout).toBe(`CapEff:\t${((1n << 21n) | (1n << 2n)).toString(16).padStart(16, '0')}\nno-key\n0\n`);
    // As the Director's user, through the shared run directory: the helper may mount (nothing missing).
    const ask = "const t=require('fs').readFileSync('/run/vaultline-flr/token','utf8').trim();require('http').get({socketPath:'/run/vaultline-flr/flr.sock',path:'/v1/health',headers:{authorization:'Bearer '+t}},(r)=>{let b='';r.on('data',(d)=>b+=d);r.on('end',()=>console.log(r.statusCode,b))})";
    const health = await pm.run(['exec', '--user', 'vaultline', names.director, 'node', '-e', ask]);
    expect(health.stdout.trim()).toBe('200 {"missing":[]}');
  }, 4 * MIN);

  it('starts a privileged Transporter that registers with the Director', async () => {
    await pm.run(runArgs('transporter', names.transporter, { VAULTLINE_TRANSPORTER_NAME: 'docker-test' }));
    let online = 0;
    const end = Date.now() + 3 * MIN;
    while (Date.now() < end && online < 1) {
      const h = await http(`${url}/api/health`).then((r) => r.json() as Promise<{ transporters: { online: number } }>, () => undefined);
      online = h?.transporters.online ?? 0;
      if (online < 1) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(online).toBe(1);
    // Privileged: it can use block devices, so it offers every transport.
    const list = (await http(`${url}/api/transporters`, { headers: { cookie } }).then((r) => r.json())) as { name: string; online: boolean; capabilities: { transports: string[] } }[];
    expect(list).toMatchObject([{ name: 'docker-test', online: true, capabilities: { transports: ['san', 'hotadd', 'nbdssl', 'nbd'] } }]);
  }, 4 * MIN);

  it('runs the cli role against the Director', async () => {
    const r = await pm.run(['run', '--rm', '--network', 'host', '-e', `VAULTLINE_URL=${url}`, '-e', `VAULTLINE_TLS_FINGERPRINT=${fingerprint}`, TAG, 'cli', 'health']);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, postgres: { ok: true }, redis: { ok: true }, transporters: { online: 1 } });
  }, 2 * MIN);

  it('stops every process gracefully on SIGTERM (exit code 0)', async () => {
    for (const n of [names.transporter, names.flr, names.director]) {
      await pm.run(['stop', '-t', '60', n]);
      expect((await pm.run(['inspect', '-f', '{{.State.ExitCode}}', n])).stdout.trim()).toBe('0');
    }
  }, 3 * MIN);
});
