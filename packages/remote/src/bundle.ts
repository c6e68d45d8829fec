/**
 * The self-contained Transporter bundle, so the remote host needs nothing
 * installed but a Linux with glibc, /bin/sh, tar and gzip:
 *
 *   node                    the appliance's own Node.js binary (same OS/arch)
 *   app/                    the Transporter's workspace closure in the repository's
 *                           own layout: apps/transporter, the @vaultline packages it
 *                           imports (TypeScript source, run through tsx as on the
 *                           appliance) and node_modules holding exactly the
 *                           production dependencies they resolve (plus tsx)
 *   bin/transporter         launcher: node --env-file=<install>/transporter.env …
 *   bin/supervise           restarts the Transporter when no systemd is used
 *   BUNDLE.json             version, digest, platform, glibc needed
 *
 * The closure is found by walking package.json dependencies with Node's
 * resolution (nearest node_modules upwards), so the hoisted layout and the
 * workspace symlinks work unchanged. The gzipped tar is built once per content
 * digest and cached in a folder.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { writeTar, type TarEntry } from './tar.ts';

export interface BundleOptions {
  /** The repository root (holds package.json with the workspaces and node_modules). */
  rootDir: string;
  /** The app to bundle, relative to rootDir. */
  app?: string;
  /** The version the bundle is installed as (the appliance's version). */
  version: string;
  /** Where built bundles are kept (one per digest; older ones are removed). */
  cacheDir: string;
  /** The Node.js binary to ship; the running one by default. */
  nodeBinary?: string;
}

export interface TransporterBundle {
  version: string;
  /** SHA-256 over every path, mode and content in the bundle (hex). */
  digest: string;
  /** The gzipped tar. */
  file: string;
  compressedBytes: number;
  /** Space the unpacked bundle takes (file sizes rounded up to 4 KiB blocks). */
  unpackedBytes: number;
  files: number;
  /** `uname -m` the bundle runs on (x86_64, aarch64). */
  machine: string;
  nodeVersion: string;
  /** Highest GLIBC_x.y symbol version the binaries in the bundle need. */
  glibcRequired: string;
}

/** `process.arch` → `uname -m`. */
export const MACHINE_OF_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ppc64: 'ppc64le', s390x: 's390x' };

const SKIP_DIRS = new Set(['node_modules', 'test', 'tests', '__tests__', '.cache', 'dist-test', 'bench', '.turbo']);

interface PkgJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Node's lookup: `<dir>/node_modules/<name>`, then each parent, up to the root. */
async function resolvePackage(fromDir: string, name: string, rootDir: string): Promise<string | null> {
  let dir = fromDir;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (await exists(path.join(candidate, 'package.json'))) return candidate;
    if (dir === rootDir || path.dirname(dir) === dir) return null;
    dir = path.dirname(dir);
  }
}

/** Every package directory (as found, possibly a workspace symlink) the apps need at run time. */
async function closure(rootDir: string, appDirs: string[], extra: string[], what: string): Promise<{ dirs: Set<string>; links: Set<string> }> {
  const dirs = new Set<string>();
  const links = new Set<string>();
  const queue: string[] = [...appDirs];
  for (const name of extra) {
    const found = await resolvePackage(appDirs[0]!, name, rootDir);
    if (!found) throw new Error(`cannot bundle ${what}: ${name} is not installed (run npm ci)`);
    queue.push(found);
  }
  while (queue.length) {
    const found = queue.shift()!;
    const real = await realpath(found);
    if (real !== found) links.add(found);
    if (dirs.has(real)) continue;
    dirs.add(real);
    const pkg = JSON.parse(await readFile(path.join(real, 'package.json'), 'utf8')) as PkgJson;
    const required = Object.keys(pkg.dependencies ?? {});
    const optional = Object.keys(pkg.optionalDependencies ?? {});
    const peers = Object.keys(pkg.peerDependencies ?? {}).filter((p) => !pkg.peerDependenciesMeta?.[p]?.optional);
    for (const dep of [...new Set([...required, ...optional, ...peers])]) {
      // Resolution starts from where the package sits in node_modules (found), as Node does for a non-symlinked package,
      // and from its real folder for workspace packages (Node resolves symlinks).
      const target = await resolvePackage(real, dep, rootDir);
      if (target) queue.push(target);
      else if (required.includes(dep)) throw new Error(`cannot bundle ${what}: ${pkg.name} needs ${dep}, which is not installed (run npm ci)`);
    }
  }
  return { dirs, links };
}

export interface ClosureOptions {
  /** The repository root (holds package.json with the workspaces and node_modules). */
  rootDir: string;
  /** The apps (or packages) whose run-time closure is wanted, relative to rootDir. */
  apps: string[];
  /** Further packages to include, resolved from the first app (e.g. tsx, which runs the TypeScript). */
  extra?: string[];
  /** Named in errors ("cannot bundle <what>: …"). */
  what?: string;
}

/**
 * Every folder, file and workspace link the apps need at run time, in the repository's
 * layout: the apps, the workspace packages they import (without tests and benches) and
 * exactly the production dependencies they resolve, plus the root package.json and
 * tsconfig.base.json. Absolute paths under `rootDir` (its real path, also returned), sorted.
 */
export async function workspaceClosure(opts: ClosureOptions): Promise<{ rootDir: string; paths: string[] }> {
  const rootDir = await realpath(opts.rootDir);
  const appDirs = opts.apps.map((a) => path.join(rootDir, a));
  const { dirs, links } = await closure(rootDir, appDirs, opts.extra ?? [], opts.what ?? 'the Transporter');
  const files: string[] = [];
  for (const dir of dirs) {
    const isWorkspace = !path.relative(rootDir, dir).split(path.sep).includes('node_modules');
    files.push(dir);
    await walk(dir, isWorkspace, files);
  }
  // The repository root's package.json and shared tsconfig, which workspace tsconfigs extend.
  for (const f of ['package.json', 'tsconfig.base.json']) if (await exists(path.join(rootDir, f))) files.push(path.join(rootDir, f));
  return { rootDir, paths: [...new Set([...files, ...links])].sort() };
}

async function walk(dir: string, isWorkspace: boolean, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === 'node_modules') continue;
      if (isWorkspace && SKIP_DIRS.has(entry.name)) continue;
      // node-gyp's intermediate objects: the addon that loads is build/Release/*.node.
      if (!isWorkspace && (entry.name === 'obj.target' || entry.name === '.deps') && path.basename(dir) === 'Release') continue;
      out.push(full);
      await walk(full, isWorkspace, out);
    } else if (entry.isFile() || entry.isSymbolicLink()) {
      if (isWorkspace && /\.test\.ts$/.test(entry.name)) continue;
      out.push(full);
    }
  }
}

/** Highest GLIBC_x.y version named in an ELF file's symbol versions (null when none: static or not ELF). */
export async function glibcNeeded(file: string): Promise<string | null> {
  const fh = await open(file, 'r');
  try {
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, 0);
    if (!magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return null;
  } finally {
    await fh.close();
  }
  const text = (await readFile(file)).toString('latin1');
  let best: [number, number] | null = null;
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)/g)) {
    const v: [number, number] = [Number(m[1]), Number(m[2])];
    if (!best || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
  }
  return best ? `${best[0]}.${best[1]}` : null;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

const LAUNCHER = `#!/bin/sh
# Vaultline Transporter, started from this installed bundle. Settings: ../transporter.env (mode 0600).
here=$(cd "$(dirname "$0")/.." && pwd)
base=$(dirname "$here")
cd "$here/app" || exit 1
exec "$here/node" --env-file="$base/transporter.env" --import tsx apps/transporter/src/main.ts
`;

/**
 * Keeps the Transporter running when the host has no systemd: restarts it 5 s
 * after it exits, forwards SIGTERM/SIGINT and exits after it; ignores SIGHUP so
 * it outlives the SSH session. Writes supervisor.pid and transporter.pid.
 */
const SUPERVISOR = `#!/bin/sh
here=$(cd "$(dirname "$0")/.." && pwd)
base=$(dirname "$here")
echo $$ > "$base/supervisor.pid"
child=
stopping=0
stop() {
  stopping=1
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
  rm -f "$base/transporter.pid" "$base/supervisor.pid"
  exit 0
}
trap stop TERM INT
trap '' HUP
while :; do
  "$here/bin/transporter" &
  child=$!
  echo "$child" > "$base/transporter.pid"
  wait "$child"
  code=$?
  [ "$stopping" = 1 ] && exit 0
  echo "vaultline supervisor: transporter exited ($code); starting it again in 5 s" >&2
  sleep 5 &
  wait $!
done
`;

interface Collected {
  entries: TarEntry[];
  digest: string;
  unpackedBytes: number;
  glibcRequired: string;
}

async function collect(opts: BundleOptions, nodeBinary: string, nodeVersion: string, machine: string): Promise<Collected> {
  const { rootDir, paths: all } = await workspaceClosure({ rootDir: opts.rootDir, apps: [opts.app ?? 'apps/transporter'], extra: ['tsx'] });

  const hash = createHash('sha256');
  const entries: TarEntry[] = [];
  let unpacked = 0;
  let glibc = '0.0';
  const addGlibc = async (file: string) => {
    const need = await glibcNeeded(file);
    if (need && compareVersions(need, glibc) > 0) glibc = need;
  };
  const parents = new Set<string>();
  const addParents = (rel: string) => {
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const d = segs.slice(0, i).join('/');
      if (!parents.has(d)) {
        parents.add(d);
        entries.push({ type: 'dir', path: d, mode: 0o755, mtime: 0 });
      }
    }
  };
  const addMemory = (rel: string, content: string | Buffer, mode: number, hashed = true) => {
    const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
    addParents(rel);
    entries.push({ type: 'file', path: rel, mode, mtime: Math.floor(Date.now() / 1000), content: buf });
    if (hashed) hash.update(`F ${rel} ${mode.toString(8)} ${buf.length}\n`).update(buf);
    unpacked += Math.ceil(buf.length / 4096) * 4096;
  };

  {
    const st = await stat(nodeBinary);
    addParents('node');
    entries.push({ type: 'file', path: 'node', mode: 0o755, size: st.size, mtime: Math.floor(st.mtimeMs / 1000), source: nodeBinary });
    hash.update(`F node 755 ${st.size}\n`).update(await readFile(nodeBinary));
    unpacked += Math.ceil(st.size / 4096) * 4096;
    await addGlibc(nodeBinary);
  }
  for (const full of all) {
    const rel = `app/${path.relative(rootDir, full).split(path.sep).join('/')}`;
    const st = await lstat(full);
    if (st.isSymbolicLink()) {
      const target = await readlink(full);
      addParents(rel);
      entries.push({ type: 'symlink', path: rel, target, mtime: Math.floor(st.mtimeMs / 1000) });
      hash.update(`L ${rel} ${target}\n`);
    } else if (st.isDirectory()) {
      if (parents.has(rel)) continue;
      addParents(rel);
      parents.add(rel);
      entries.push({ type: 'dir', path: rel, mode: st.mode & 0o755, mtime: Math.floor(st.mtimeMs / 1000) });
      unpacked += 4096;
    } else if (st.isFile()) {
      addParents(rel);
      const mode = st.mode & 0o100 ? 0o755 : 0o644;
      entries.push({ type: 'file', path: rel, mode, size: st.size, mtime: Math.floor(st.mtimeMs / 1000), source: full });
      hash.update(`F ${rel} ${mode.toString(8)} ${st.size}\n`).update(await readFile(full));
      unpacked += Math.ceil(st.size / 4096) * 4096;
      if (/\.node$/.test(full) || mode === 0o755) await addGlibc(full);
    }
  }
  addMemory('bin/transporter', LAUNCHER, 0o755);
  addMemory('bin/supervise', SUPERVISOR, 0o755);
  const digest = hash.digest('hex');
  addMemory('BUNDLE.json', JSON.stringify({ version: opts.version, digest, machine, nodeVersion, glibcRequired: glibc }) + '\n', 0o644, false);
  return { entries, digest, unpackedBytes: unpacked, glibcRequired: glibc };
}

const building = new Map<string, Promise<TransporterBundle>>();

/** Builds (or finds in the cache) the bundle for this appliance version; concurrent callers share one build. */
export function transporterBundle(opts: BundleOptions): Promise<TransporterBundle> {
  const key = JSON.stringify([path.resolve(opts.rootDir), opts.app, opts.version, path.resolve(opts.cacheDir), opts.nodeBinary]);
  let p = building.get(key);
  if (!p) {
    p = build(opts);
    building.set(key, p);
    p.catch(() => building.delete(key));
  }
  return p;
}

async function build(opts: BundleOptions): Promise<TransporterBundle> {
  const nodeBinary = opts.nodeBinary ?? process.execPath;
  const machine = MACHINE_OF_ARCH[process.arch] ?? process.arch;
  const nodeVersion = process.version;
  if (process.platform !== 'linux') throw new Error(`Transporter bundles are built on Linux only (this appliance runs on ${process.platform})`);
  const { entries, digest, unpackedBytes, glibcRequired } = await collect(opts, nodeBinary, nodeVersion, machine);
  await mkdir(opts.cacheDir, { recursive: true, mode: 0o700 });
  const name = `transporter-${opts.version}-${machine}-${digest.slice(0, 16)}.tar.gz`;
  const file = path.join(opts.cacheDir, name);
  if (!(await exists(file))) {
    const tmp = `${file}.${process.pid}.tmp`;
    const gzip = createGzip({ level: 6 });
    const written = pipeline(gzip, createWriteStream(tmp, { mode: 0o600 }));
    try {
      await writeTar(entries, gzip);
      gzip.end();
      await written;
      await rename(tmp, file);
    } catch (err) {
      // Tear the pipeline down (closing the file) before removing what it wrote.
      gzip.destroy();
      await written.catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    // Only the current bundle is kept.
    for (const other of await readdir(opts.cacheDir)) {
      if (other !== name && /^transporter-.*\.tar\.gz$/.test(other)) await rm(path.join(opts.cacheDir, other), { force: true });
    }
  }
  return {
    version: opts.version,
    digest,
    file,
    compressedBytes: (await stat(file)).size,
    unpackedBytes,
    files: entries.length,
    machine,
    nodeVersion,
    glibcRequired,
  };
}
