/**
 * Builds the lab server (vcsim + Vaultline's overlay) from Debian packages.
 *
 * govmomi's simulator is only available offline as Debian's GOPATH tree
 * (golang-github-vmware-govmomi-dev, /usr/share/gocode); module mode cannot
 * resolve govmomi's go.mod offline, so this builds in GOPATH mode
 * (GO111MODULE=off). Our own main.go is copied into a private GOPATH under
 * .cache/, and the files in go/overlay/ are compiled INTO package simulator
 * with `go build -overlay` (no Debian file is modified). The binary is cached
 * under a hash of all Go sources, the Go version and the Debian tree, so later
 * starts reuse it. Concurrent builders (parallel test files) serialise on a
 * lock file holding the builder's pid.
 */
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { childEnv, isRoot, labEnv, packageDir } from './env.ts';
import { pidAlive } from './host-resources.ts';

const goDir = path.join(packageDir, 'go');
// go-fuse mounts real NFS exports as NFS datastores (go/overlay/zz_vaultline_nfsfuse.go). Its import path ends
// in /v2 while Debian's tree has none: GOPATH mode resolves it through go-fuse's go.mod, because the importing
// package (govmomi's simulator) sits under a go.mod too.
const goPackages = ['golang-go', 'golang-github-vmware-govmomi-dev', 'golang-github-hanwen-go-fuse-dev'];

function govmomiDir(gopath = labEnv.debianGopath): string {
  return path.join(gopath, 'src', 'github.com', 'vmware', 'govmomi');
}

function goFuseDir(gopath = labEnv.debianGopath): string {
  return path.join(gopath, 'src', 'github.com', 'hanwen', 'go-fuse');
}

function haveToolchain(gopath = labEnv.debianGopath): boolean {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  return (
    go.status === 0 &&
    fs.existsSync(path.join(govmomiDir(gopath), 'simulator', 'simulator.go')) &&
    fs.existsSync(path.join(goFuseDir(gopath), 'fs', 'api.go'))
  );
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${out.slice(-4000)}`)),
    );
  });
}

/** Installs the Debian toolchain when missing (root only), else explains what to install. */
export async function ensureToolchain(opts: { debianGopath?: string; root?: boolean } = {}): Promise<void> {
  const gopath = opts.debianGopath ?? labEnv.debianGopath;
  if (haveToolchain(gopath)) return;
  if (!(opts.root ?? isRoot())) {
    throw new Error(
      `The lab vCenter needs Go, govmomi's and go-fuse's sources from Debian: run\n` +
        `  sudo apt-get update && sudo apt-get install -y ${goPackages.join(' ')}\n` +
        `(expected 'go' on PATH, ${govmomiDir(gopath)} and ${goFuseDir(gopath)}).`,
    );
  }
  const env = childEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  await run('apt-get', ['update'], env);
  await run('apt-get', ['install', '-y', ...goPackages], env);
  if (!haveToolchain(gopath)) throw new Error(`installed ${goPackages.join(' ')} but ${govmomiDir(gopath)}, ${goFuseDir(gopath)} or go is still missing`);
}

function sourceFiles(): { main: string; overlay: string[] } {
  const main = path.join(goDir, 'vcsim-lab', 'main.go');
  const overlayDir = path.join(goDir, 'overlay');
  const overlay = fs
    .readdirSync(overlayDir)
    .filter((f) => f.endsWith('.go'))
    .sort()
    .map((f) => path.join(overlayDir, f));
  return { main, overlay };
}

function sourceHash(): string {
  const { main, overlay } = sourceFiles();
  const h = createHash('sha256');
  for (const f of [main, ...overlay]) h.update(path.basename(f)).update('\0').update(fs.readFileSync(f)).update('\0');
  h.update(spawnSync('go', ['version'], { encoding: 'utf8' }).stdout ?? '');
  for (const f of [path.join(govmomiDir(), 'simulator', 'simulator.go'), path.join(goFuseDir(), 'fs', 'api.go')]) {
    const st = fs.statSync(f);
    h.update(`${st.size}:${st.mtimeMs}`);
  }
  return h.digest('hex').slice(0, 16);
}


async function withLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(fs.readFileSync(lockFile, 'utf8').trim());
      if (!holder || !pidAlive(holder)) {
        fs.rmSync(lockFile, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

/** Builds (or reuses) the lab server binary and returns its path. */
export async function buildLabServer(): Promise<string> {
  await ensureToolchain();
  const cache = labEnv.cacheDir;
  const binDir = path.join(cache, 'bin');
  const bin = path.join(binDir, `vcsim-lab-${sourceHash()}`);
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(binDir, { recursive: true });
  return withLock(path.join(cache, 'build.lock'), async () => {
    if (fs.existsSync(bin)) return bin; // built by another process while we waited
    const { main, overlay } = sourceFiles();
    const gopath = path.join(cache, 'gopath');
    const pkgDir = path.join(gopath, 'src', 'vaultline', 'vcsim-lab');
    fs.rmSync(pkgDir, { recursive: true, force: true });
    fs.mkdirSync(pkgDir, { recursive: true });
    fs.copyFileSync(main, path.join(pkgDir, 'main.go'));
    const replace: Record<string, string> = {};
    for (const f of overlay) replace[path.join(govmomiDir(), 'simulator', path.basename(f))] = f;
    const overlayJson = path.join(cache, 'overlay.json');
    fs.writeFileSync(overlayJson, JSON.stringify({ Replace: replace }, null, 2));
    const tmp = `${bin}.tmp-${process.pid}`;
    const env = childEnv({
      GO111MODULE: 'off',
      GOFLAGS: '',
      GOPATH: `${gopath}${path.delimiter}${labEnv.debianGopath}`,
      GOCACHE: path.join(cache, 'gocache'),
      CGO_ENABLED: '0',
    });
    await run('go', ['build', '-overlay', overlayJson, '-o', tmp, 'vaultline/vcsim-lab'], env, cache);
    fs.renameSync(tmp, bin);
    for (const old of fs.readdirSync(binDir)) {
      if (old.startsWith('vcsim-lab-') && path.join(binDir, old) !== bin) fs.rmSync(path.join(binDir, old), { force: true });
    }
    return bin;
  });
}
