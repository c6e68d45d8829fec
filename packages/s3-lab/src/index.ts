/**
 * A real S3 server on 127.0.0.1 for tests: Ceph's RADOS Gateway (Debian's `radosgw`) on a single-node
 * cluster of its own — one monitor and one OSD whose object store lives in memory (memstore), so nothing
 * touches a disk and a run leaves nothing behind. The gateway speaks S3 with versioning and Object Lock,
 * which is what the repository's S3 backend and its immutability are tested against.
 *
 * Every daemon runs in the foreground as a child of this process, in a run folder of its own under the
 * temporary directory; stop() ends them by pid and removes the folder. A folder left by a process that
 * died (its owner pid is gone) is cleaned up by the next start, daemons included.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { freePort } from '@vaultline/config';

export interface S3Lab {
  /** http://127.0.0.1:<port> (path-style bucket addressing). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Credentials of a second user, for tests that act as someone else holding the storage's keys. */
  other: { accessKeyId: string; secretAccessKey: string };
  /** Creates a bucket of the first user's (with Object Lock when asked; it cannot be added later). */
  createBucket(name: string, opts?: { objectLock?: boolean }): Promise<void>;
  /** Every object (its newest version) in a bucket of the first user's whose key starts with `prefix`: key → size. */
  objects(bucket: string, prefix?: string): Promise<Map<string, number>>;
  /** Stops the gateway, the OSD and the monitor, and removes every file of the lab. */
  stop(): Promise<void>;
}

const PACKAGES = ['radosgw', 'ceph-mon', 'ceph-osd', 'ceph-common'];
const PREFIX = 'vaultline-s3-lab-';

/** Ceph's daemons and tools must be here: `npm test` installs them from Debian's packages (scripts/commands/test.mjs). */
export function ensureCeph(): void {
  const missing = ['radosgw', 'radosgw-admin', 'ceph-mon', 'ceph-osd', 'ceph', 'monmaptool', 'ceph-authtool'].filter((t) => !fs.existsSync(`/usr/bin/${t}`));
  if (missing.length > 0) {
    throw new Error(`the S3 tests need Ceph's RADOS Gateway (missing ${missing.join(', ')}): npm test installs it, or run apt-get install ${PACKAGES.join(' ')}`);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Ends the daemons of run folders whose owner died, and removes those folders. */
function sweepStale(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(os.tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner'), 'utf8'));
    } catch {
      // no owner file: a start that died before writing it
    }
    if (owner > 0 && alive(owner)) continue;
    killDaemons(dir, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function killDaemons(dir: string, signal: NodeJS.Signals): void {
  let pids: string[] = [];
  try {
    pids = fs.readFileSync(path.join(dir, 'pids'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids.map(Number)) {
    // Only a process still started from this folder's configuration (pids are reused).
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes(path.join(dir, 'ceph.conf'))) process.kill(pid, signal);
  }
}

function config(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
# One node, no network beyond loopback: no authentication between the lab's own daemons.
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# The OSD's objects live in memory: nothing is written to a disk, and stop() leaves nothing.
osd objectstore = memstore
memstore device bytes = ${4 * 1024 ** 3}
# The OSD joins the CRUSH map by the lab's own command (its own update at start is refused here).
osd crush update on start = false
osd class update on start = false
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
mon data = ${dir}/mon/$id
osd data = ${dir}/osd/$id
keyring = ${dir}/keyring

[client.rgw.lab]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw dns name = localhost
`;
}

/** Starts a monitor, an OSD and a gateway with one S3 user (plus a second one), and waits until S3 answers. */
export async function startS3Lab(): Promise<S3Lab> {
  ensureCeph();
  sweepStale();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), PREFIX));
  fs.writeFileSync(path.join(dir, 'owner'), String(process.pid));
  for (const d of ['run', 'log', 'mon', 'osd']) fs.mkdirSync(path.join(dir, d));
  const conf = path.join(dir, 'ceph.conf');
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const fsid = randomUUID();
  fs.writeFileSync(conf, config(dir, fsid, monPort, rgwPort));
  const children: ChildProcess[] = [];
  const c = ['-c', conf];
  const run = (cmd: string, args: string[]) => execFileSync(cmd, [...c, ...args], { stdio: 'pipe', timeout: 60_000 }).toString();
  const daemon = (cmd: string, args: string[]) => {
    const child = spawn(cmd, [...c, '-f', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('exit', (code) => {
      if (!stopping && code !== null && code !== 0) early = `${cmd} exited with ${code}: ${err.trim()}`;
    });
    children.push(child);
    fs.appendFileSync(path.join(dir, 'pids'), `${child.pid}\n`);
    return child;
  };
  let stopping = false;
  let early: string | null = null;

  const stop = async () => {
    stopping = true;
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    killDaemons(dir, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    execFileSync('ceph-authtool', ['--create-keyring', path.join(dir, 'keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *'], { stdio: 'pipe' });
    execFileSync('monmaptool', ['--create', '--addv', 'a', `v1:127.0.0.1:${monPort}`, '--fsid', fsid, path.join(dir, 'monmap')], { stdio: 'pipe' });
    run('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', path.join(dir, 'monmap'), '--keyring', path.join(dir, 'keyring')]);
    daemon('ceph-mon', ['-i', 'a']);
    const osdUuid = randomUUID();
    const id = (await retry(() => run('ceph', ['--connect-timeout', '5', 'osd', 'create', osdUuid]), () => early)).trim();
    fs.mkdirSync(path.join(dir, 'osd', id));
    run('ceph-osd', ['-i', id, '--mkfs', '--osd-uuid', osdUuid]);
    daemon('ceph-osd', ['-i', id]);
    run('ceph', ['osd', 'crush', 'add', `osd.${id}`, '1.0', 'root=default', 'host=lab']);
    await retry(() => {
      if (!/1 up/.test(run('ceph', ['osd', 'stat']))) throw new Error('the OSD is not up yet');
    }, () => early);
    const user = { accessKeyId: `LAB${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(24).toString('base64url') };
    const other = { accessKeyId: `LAB${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(24).toString('base64url') };
    run('radosgw-admin', ['user', 'create', '--uid=vaultline', '--display-name=Vaultline', `--access-key=${user.accessKeyId}`, `--secret-key=${user.secretAccessKey}`]);
    run('radosgw-admin', ['user', 'create', '--uid=someone-else', '--display-name=Someone else', `--access-key=${other.accessKeyId}`, `--secret-key=${other.secretAccessKey}`]);
    daemon('radosgw', ['-n', 'client.rgw.lab']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    await retry(async () => {
      const res = await fetch(`${endpoint}/`);
      if (res.status !== 200) throw new Error(`the gateway answered ${res.status}`);
    }, () => early);
    const region = 'us-east-1';
    const createBucket = async (name: string, opts: { objectLock?: boolean } = {}) => {
      const s3 = new S3Client({ endpoint, region, forcePathStyle: true, credentials: user });
      try {
        await s3.send(new CreateBucketCommand({ Bucket: name, ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
      } finally {
        s3.destroy();
      }
    };
    const objects = async (bucket: string, prefix = '') => {
      const s3 = new S3Client({ endpoint, region, forcePathStyle: true, credentials: user });
      const out = new Map<string, number>();
      try {
        let token: string | undefined;
        do {
          const page: ListObjectsV2CommandOutput = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
          for (const o of page.Contents ?? []) out.set(o.Key!, o.Size ?? 0);
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
      } finally {
        s3.destroy();
      }
      return out;
    };
    return { endpoint, region, ...user, other, createBucket, objects, stop };
  } catch (err) {
    const log = (name: string) => {
      try {
        return fs.readFileSync(path.join(dir, 'log', name), 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        return '';
      }
    };
    const detail = early ?? `${log('mon.a.log')}\n${log('osd.0.log')}\n${log('client.rgw.lab.log')}`;
    await stop();
    throw new Error(`the S3 lab (Ceph RADOS Gateway) did not start: ${(err as Error).message}\n${detail.trim()}`, { cause: err });
  }
}

/** Calls fn until it succeeds, for up to 60 s, unless a daemon died (then its reason). */
async function retry<T>(fn: () => T | Promise<T>, died: () => string | null): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const why = died();
    if (why) throw new Error(why);
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
