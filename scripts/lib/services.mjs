// PostgreSQL and Redis: used at DATABASE_URL / REDIS_URL when reachable, otherwise project-local
// instances are started (with data under .vaultline/services, on non-default ports) and registered
// to be stopped when the command exits.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { aptInstall } from './apt.mjs';
import { SetupError, say } from './output.mjs';
import { SERVICES, isRoot } from './paths.mjs';
import { have, run, stops } from './processes.mjs';

// Below the kernel's ephemeral range (32768–60999 by default): a port there can be taken at any moment as the
// local end of some outgoing connection, and the project-local server would then fail to listen.
const LOCAL_PG_PORT = 15432;
const LOCAL_REDIS_PORT = 16379;

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

function findPgBin() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(base, versions[0], 'bin') : null;
}

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
export async function ensureServices() {
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
