/**
 * A throwaway PostgreSQL and Redis that speak TLS, configured as the appliance's
 * are for remote Transporters: a test CA and a server certificate for 127.0.0.1;
 * PostgreSQL with ssl=on and an hba that lets vl_transporters members in only
 * over hostssl (the postgres superuser over plain loopback, as the Director);
 * Redis on a TLS port only, with an ACL file. Both on free loopback ports, in a
 * temporary folder removed by stop(). Used by the Director's tests and by the
 * browser tests' appliance (e2e/fixtures/appliance.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TlsServices {
  dir: string;
  caFile: string;
  /** The superuser over plain TCP on loopback (trust), as the Director connects. */
  pgAdminUrl: string;
  pgPort: number;
  /** The Redis default user over TLS, as the Director connects. */
  redisAdminUrl: string;
  redisPort: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });

function pgBin(): string {
  const base = '/usr/lib/postgresql';
  const version = readdirSync(base).sort((a, b) => Number(b) - Number(a))[0];
  if (!version) throw new Error('no PostgreSQL under /usr/lib/postgresql');
  return path.join(base, version, 'bin');
}

export async function startTlsServices(): Promise<TlsServices> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-tls-services-'));
  chmodSync(dir, 0o755);
  const pki = path.join(dir, 'pki');
  mkdirSync(pki);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Vaultline test CA'], pki);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], pki);
  writeFileSync(path.join(pki, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext'], pki);
  chmodSync(pki, 0o755);
  chmodSync(path.join(pki, 'ca.pem'), 0o644);
  chmodSync(path.join(pki, 'server.pem'), 0o644);

  // PostgreSQL refuses to run as root: the cluster (and its key) belong to the postgres user.
  const root = process.getuid?.() === 0;
  const pgUid = root ? Number(execFileSync('id', ['-u', 'postgres']).toString().trim()) : process.getuid!();
  const pgGid = root ? Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) : process.getgid!();
  const asPg = (cmd: string, args: string[]): [string, string[]] => (root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  const pgDir = path.join(dir, 'pg');
  const pgKey = path.join(dir, 'pg-server.key');
  writeFileSync(pgKey, readFileSync(path.join(pki, 'server.key')), { mode: 0o600 });
  mkdirSync(pgDir, { mode: 0o700 });
  if (root) {
    chownSync(pgDir, pgUid, pgGid);
    chownSync(pgKey, pgUid, pgGid);
  }
  const bin = pgBin();
  const [ic, ia] = asPg(path.join(bin, 'initdb'), ['-D', pgDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  execFileSync(ic, ia, { stdio: 'ignore' });
  const hba = path.join(pgDir, 'pg_hba.conf');
  writeFileSync(
    hba,
    [
      'local all all trust',
      '# Transporters: only over TLS, with their password.',
      'hostssl all +vl_transporters 127.0.0.1/32 scram-sha-256',
      'host all +vl_transporters 127.0.0.1/32 reject',
      'host all postgres 127.0.0.1/32 trust',
      '',
    ].join('\n'),
  );
  const pgPort = await freePort();
  const log = path.join(pgDir, 'server.log');
  const opts = [`-p ${pgPort}`, '-c listen_addresses=127.0.0.1', `-k ${pgDir}`, '-c ssl=on', `-c ssl_cert_file=${path.join(pki, 'server.pem')}`, `-c ssl_key_file=${pgKey}`, '-c fsync=off'].join(' ');
  const [sc, sa] = asPg(path.join(bin, 'pg_ctl'), ['-D', pgDir, '-l', log, '-w', '-t', '30', '-o', opts, 'start']);
  execFileSync(sc, sa, { stdio: 'ignore' });

  const redisDir = path.join(dir, 'redis');
  mkdirSync(redisDir);
  const aclFile = path.join(redisDir, 'users.acl');
  writeFileSync(aclFile, 'user default on nopass ~* &* +@all\n');
  const redisPort = await freePort();
  const pidFile = path.join(redisDir, 'redis.pid');
  execFileSync('redis-server', [
    '--port', '0', '--tls-port', String(redisPort), '--bind', '127.0.0.1',
    '--tls-cert-file', path.join(pki, 'server.pem'), '--tls-key-file', path.join(pki, 'server.key'), '--tls-ca-cert-file', path.join(pki, 'ca.pem'), '--tls-auth-clients', 'no',
    '--aclfile', aclFile, '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', pidFile, '--dir', redisDir, '--logfile', path.join(redisDir, 'redis.log'),
  ]);
  const caFile = path.join(pki, 'ca.pem');
  for (let i = 0; i < 50; i++) {
    const r = spawnSync('redis-cli', ['--tls', '--cacert', caFile, '-h', '127.0.0.1', '-p', String(redisPort), 'PING'], { encoding: 'utf8' });
    if (r.stdout.trim() === 'PONG') break;
    await new Promise((res) => setTimeout(res, 100));
  }

  return {
    dir,
    caFile,
    pgAdminUrl: `postgresql://postgres@127.0.0.1:${pgPort}/postgres`,
    pgPort,
    redisAdminUrl: `rediss://127.0.0.1:${redisPort}/?tls_ca_file=${encodeURIComponent(caFile)}`,
    redisPort,
    async stop() {
      const [c, a] = asPg(path.join(bin, 'pg_ctl'), ['-D', pgDir, '-m', 'immediate', '-w', 'stop']);
      spawnSync(c, a, { stdio: 'ignore' });
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
