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
//
// The set-up, services and processes are in lib/, `start` and `test` in commands/.

import { start } from './commands/start.mjs';
import { test } from './commands/test.mjs';
import { SetupError, fail, say } from './lib/output.mjs';
import { DATA } from './lib/paths.mjs';
import { stopServices } from './lib/processes.mjs';
import { build, ensureDependencies, ensureNode, ensurePrismaClient, passThrough, setup } from './lib/setup.mjs';
import { ensureServices } from './lib/services.mjs';

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
    // `npm run bench -- overview ...`: the overview at estate scale (bench/overview.ts): the lab vCenter, a Director
    // built in its process on a database of its own (PostgreSQL server URL) and Redis.
    if (rest[0] === 'overview') {
      const services = await ensureServices();
      const server = new URL(services.databaseUrl);
      server.pathname = '/postgres';
      process.env.DATABASE_URL = server.toString();
      process.env.REDIS_URL = services.redisUrl;
      return passThrough('bench/overview.ts', rest.slice(1), false);
    }
    // `npm run bench -- t2t ...`: Transporter-to-Transporter transfer across tc-shaped links between network namespaces (root).
    if (rest[0] === 't2t') return passThrough('bench/t2t.ts', rest.slice(1), false);
    // `npm run bench -- instant-boot ...`: recover → VM running from a restore point in QEMU, against booting a local file.
    if (rest[0] === 'instant-boot') return passThrough('bench/instant-boot.ts', rest.slice(1), false);
    // `npm run bench -- instant-vsphere ...`: recover → VM running on the lab vCenter over the appliance's NFS (root).
    if (rest[0] === 'instant-vsphere') return passThrough('bench/instant-vsphere.ts', rest.slice(1), false);
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
