// The set-up every command starts with: Node, dependencies, the Prisma client, services, the web build.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fail, say } from './output.mjs';
import { ROOT, STATE } from './paths.mjs';
import { run, stopServices, tsx } from './processes.mjs';
import { ensureServices } from './services.mjs';

const sha = (...files) => {
  const h = createHash('sha256');
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : '');
  return h.digest('hex');
};

export function ensureNode() {
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (maj < 20 || (maj === 20 && min < 19)) fail(`Node.js 20.19 or newer is needed; this is ${process.versions.node}.`);
}

export function ensureDependencies() {
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

export function ensurePrismaClient() {
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

export function build() {
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

export async function setup() {
  ensureNode();
  ensureDependencies();
  ensurePrismaClient();
  const services = await ensureServices();
  build();
  return services;
}

/** Runs a TypeScript entry point (after the set-up it needs) and exits with its exit code. */
export async function passThrough(file, args, needsServices) {
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
