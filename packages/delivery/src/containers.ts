/**
 * The Docker image, built and run with podman/buildah (this machine has no
 * Docker engine and reaches no registry but npm's and Debian's).
 *
 * docker/Dockerfile builds on `ARG BASE=node:20-bookworm-slim`. Here the base is
 * made locally in that image's layout: the Debian 12 container tree from
 * debootstrap (debian.ts) plus this machine's Node.js 20 binary, its headers
 * and npm in /usr/local, imported with `podman import`.
 *
 * podman on this VM needs two settings, kept in a private containers.conf
 * (CONTAINERS_CONF) so nothing global changes: runc instead of crun (crun
 * refuses the hybrid cgroup v1 + v2 layout here), and default ulimits at or
 * below this process's own (there is no CAP_SYS_RESOURCE to raise them).
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rm, symlink, writeFile, copyFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { debianTree } from './debian.ts';
import { BuildError, exists, fileSha256, removeTree, run, type RunOptions, type Step } from './exec.ts';

export interface Podman {
  env: NodeJS.ProcessEnv;
  run(args: string[], opts?: RunOptions): ReturnType<typeof run>;
}

/** This process's hard limit ("Max open files", "Max processes") from /proc/self/limits. */
async function hardLimit(name: string): Promise<number> {
  const line = (await readFile('/proc/self/limits', 'utf8')).split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(26).trim().split(/\s+/)[1];
  return !hard || hard === 'unlimited' ? 1048576 : Number(hard);
}

/** podman with this machine's settings (see the file comment). */
export async function podman(cacheDir: string): Promise<Podman> {
  if ((await run('sh', ['-c', 'command -v podman'], { allowFail: true })).code !== 0) throw new BuildError('podman is not installed: apt-get install podman runc');
  const runtime = (await run('sh', ['-c', 'command -v runc'], { allowFail: true })).code === 0 ? 'runc' : 'crun';
  const nofile = Math.min(await hardLimit('Max open files'), 65536);
  const nproc = Math.min(await hardLimit('Max processes'), 32768);
  await mkdir(cacheDir, { recursive: true });
  const conf = path.join(cacheDir, 'containers.conf');
  await writeFile(conf, `# Written by packages/delivery (podman on the Vaultline build machine)\n[containers]\ndefault_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]\n[engine]\nruntime = "${runtime}"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n`);
  const env = { CONTAINERS_CONF: conf, BUILDAH_RUNTIME: runtime };
  return { env, run: (args, opts = {}) => run('podman', args, { ...opts, env: { ...env, ...opts.env } }) };
}

/**
 * The local stand-in for node:20-bookworm-slim: Debian 12 minbase with Node.js
 * (binary, headers, npm) in /usr/local. Tagged by the digest of what it is made of.
 */
export async function localNodeBase(opts: { cacheDir: string; step: Step; nodeBinary?: string; podman: Podman }): Promise<string> {
  const nodeBinary = opts.nodeBinary ?? process.execPath;
  const tree = await debianTree({ flavour: 'container', cacheDir: opts.cacheDir, step: opts.step });
  const nodeVersion = (await run(nodeBinary, ['--version'])).stdout.trim();
  const prefix = path.resolve(path.dirname(nodeBinary), '..');
  const npmDir = [path.join(prefix, 'lib/node_modules/npm'), '/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm'];
  const npm = (await Promise.all(npmDir.map(async (d) => ((await exists(path.join(d, 'package.json'))) ? d : null)))).find(Boolean);
  const headers = [path.join(prefix, 'include/node'), '/usr/include/node', '/usr/local/include/node'];
  const include = (await Promise.all(headers.map(async (d) => ((await exists(path.join(d, 'node.h'))) ? d : null)))).find(Boolean);
  if (!npm) throw new BuildError(`npm was not found next to ${nodeBinary}`);
  if (!include) throw new BuildError(`the Node.js headers (node.h) were not found next to ${nodeBinary}`);
  const npmVersion = (JSON.parse(await readFile(path.join(npm, 'package.json'), 'utf8')) as { version: string }).version;
  // This machine reaches npm's registry through a TLS-inspecting proxy whose CA is in its own
  // bundle (NODE_EXTRA_CA_CERTS): the base trusts that bundle too, as an organisation's base image would.
  const hostCa = process.env.NODE_EXTRA_CA_CERTS && (await exists(process.env.NODE_EXTRA_CA_CERTS)) ? process.env.NODE_EXTRA_CA_CERTS : null;
  const digest = createHash('sha256')
    .update(JSON.stringify({ tree: tree.digest, nodeVersion, npmVersion }))
    .update(await fileSha256(nodeBinary))
    .update(hostCa ? await readFile(hostCa) : '')
    .digest('hex')
    .slice(0, 16);
  const tag = `localhost/vaultline-build/node20-bookworm:${digest}`;
  if ((await opts.podman.run(['image', 'exists', tag], { allowFail: true })).code === 0) return tag;
  await opts.step(`local base image ${tag} (Debian 12 + Node ${nodeVersion}, npm ${npmVersion})`, async () => {
    const root = path.join(opts.cacheDir, `node-base-${digest}`);
    await removeTree(root);
    await run('cp', ['-a', tree.dir, root]);
    try {
      await mkdir(path.join(root, 'usr/local/bin'), { recursive: true });
      await copyFile(nodeBinary, path.join(root, 'usr/local/bin/node'));
      await chmod(path.join(root, 'usr/local/bin/node'), 0o755);
      await mkdir(path.join(root, 'usr/local/lib/node_modules'), { recursive: true });
      await cp(npm, path.join(root, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
      await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr/local/bin/npm'));
      await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'usr/local/bin/npx'));
      await mkdir(path.join(root, 'usr/local/include'), { recursive: true });
      await cp(include, path.join(root, 'usr/local/include/node'), { recursive: true });
      await rm(path.join(root, 'etc/resolv.conf'), { force: true });
      const changes = ['--change', 'CMD ["node"]', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
      if (hostCa) {
        await copyFile(hostCa, path.join(root, 'etc/ssl/certs/build-host-ca-bundle.crt'));
        changes.push('--change', 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/build-host-ca-bundle.crt');
      }
      const tar = path.join(opts.cacheDir, `node-base-${digest}.tar`);
      await run('tar', ['--numeric-owner', '--xattrs', '-C', root, '-cf', tar, '.']);
      await opts.podman.run(['import', ...changes, tar, tag]);
      await rm(tar, { force: true });
    } finally {
      await removeTree(root);
    }
  });
  return tag;
}

/** docker/Dockerfile built with podman (buildah) from the repository root. */
export async function buildImage(opts: { rootDir: string; base: string; tag: string; podman: Podman; step: Step; log?: (s: string) => void }): Promise<void> {
  await opts.step(`podman build -f docker/Dockerfile --build-arg BASE=${opts.base} -t ${opts.tag}`, () =>
    opts.podman.run(['build', '--network', 'host', '--layers', '-f', 'docker/Dockerfile', '--build-arg', `BASE=${opts.base}`, '-t', opts.tag, '.'], {
      cwd: opts.rootDir,
      capture: false,
      ...(opts.log ? { onOutput: opts.log } : {}),
    }),
  );
}
