/**
 * `npm run build:ova`: the Vaultline appliance as an OVA.
 *
 *   1. Debian 12 tree (debian.ts), cached by its recipe's digest
 *   2. the app staged for /opt/vaultline (stage.ts), cached by its content digest
 *   3. the raw system disk (disk.ts) → streamOptimized VMDK → OVF + .ova (appliance-ovf.ts)
 *
 * The OVA is cached by the digest of everything it is made of (the Debian tree's
 * recipe, the staged app, ova-build/rootfs, the Node binary, this package's
 * code), so a second build with the same inputs only checks the digests.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianTree } from './debian.ts';
import { buildDiskImage } from './disk.ts';
import { exists, fileSha256, stepLogger, treeDigest } from './exec.ts';
import { ovaBase, vmdkNameFor, writeApplianceOva, writeVmdk } from './appliance-ovf.ts';
import { stageApp } from './stage.ts';

const SRC = path.dirname(fileURLToPath(import.meta.url));
/** This package's files the OVA is made by (a change to one of them makes a new OVA). */
export const OVA_BUILD_FILES = ['exec.ts', 'stage.ts', 'debian.ts', 'disk.ts', 'grub.ts', 'appliance-ovf.ts', 'ova.ts'].map((f) => path.join(SRC, f));

export interface OvaBuild {
  ova: string;
  /** The raw disk image the OVA was made from (kept next to it for tests and local VMs). */
  raw: string;
  version: string;
  digest: string;
  /** The appliance's kernel (in the cached Debian tree), for probing KVM. */
  kernel: string;
  /** true when nothing had changed and the cached OVA was used. */
  cached: boolean;
  bytes: number;
  seconds: number;
}

export interface OvaOptions {
  rootDir: string;
  /** Where the .ova is written (default <root>/ova-build/dist). */
  outDir?: string;
  /** Cached Debian trees, staged apps, work folder (default <root>/ova-build/.cache). */
  cacheDir?: string;
  capacityGiB?: number;
  nodeBinary?: string;
  mirror?: string;
  log?: (s: string) => void;
}

export async function buildOva(opts: OvaOptions): Promise<OvaBuild> {
  const t0 = Date.now();
  const log = opts.log ?? ((s: string) => process.stderr.write(s));
  const step = stepLogger('build-ova:', log);
  const outDir = opts.outDir ?? path.join(opts.rootDir, 'ova-build/dist');
  const cacheDir = opts.cacheDir ?? path.join(opts.rootDir, 'ova-build/.cache');
  const nodeBinary = opts.nodeBinary ?? process.execPath;
  const capacityGiB = opts.capacityGiB ?? 32;
  await mkdir(outDir, { recursive: true });

  const os = await step('Debian 12 appliance tree', () => debianTree({ flavour: 'appliance', cacheDir, step, ...(opts.mirror ? { mirror: opts.mirror } : {}) }));
  const app = await step('Vaultline app for /opt/vaultline', () => stageApp({ rootDir: opts.rootDir, cacheDir }));
  const overlayDir = path.join(opts.rootDir, 'ova-build/rootfs');
  const digest = createHash('sha256')
    .update(JSON.stringify({ os: os.digest, app: app.digest, capacityGiB }))
    .update(await treeDigest(overlayDir))
    .update(await fileSha256(nodeBinary))
    .update(Buffer.concat(await Promise.all(OVA_BUILD_FILES.map((f) => readFile(f)))))
    .digest('hex');

  const kernel = path.join(os.dir, 'boot', `vmlinuz-${os.kernel}`);
  const base = ovaBase(app.version);
  const ova = path.join(outDir, `${base}.ova`);
  const raw = path.join(outDir, `${base}.raw`);
  const stamp = path.join(outDir, `${base}.build.json`);
  if ((await exists(stamp)) && (await exists(ova)) && (await exists(raw))) {
    const prev = JSON.parse(await readFile(stamp, 'utf8')) as { digest: string };
    if (prev.digest === digest) {
      log(`build-ova: ${ova} is up to date (inputs unchanged, ${digest.slice(0, 12)})\n`);
      return { ova, raw, kernel, version: app.version, digest, cached: true, bytes: (await stat(ova)).size, seconds: (Date.now() - t0) / 1000 };
    }
  }

  const workDir = path.join(cacheDir, 'work');
  const disk = await buildDiskImage({ os, appDir: app.dir, overlayDir, nodeBinary, version: app.version, digest, capacityGiB, workDir, step });
  const vmdkFile = path.join(workDir, vmdkNameFor(app.version));
  const vmdk = await step('streamOptimized VMDK', () => writeVmdk(disk.file, vmdkFile, { fileName: vmdkNameFor(app.version) }));
  const written = await step('OVF descriptor and .ova', () => writeApplianceOva({ vmdkFile, vmdk, capacity: disk.capacity, version: app.version, baseName: base, outFile: ova }));
  // The raw image stays for local VMs and the boot test (sparse: only its data takes space).
  await rm(raw, { force: true });
  await rename(disk.file, raw);
  await rm(workDir, { recursive: true, force: true });
  const seconds = (Date.now() - t0) / 1000;
  await writeFile(stamp, JSON.stringify({ digest, version: app.version, ova, bytes: written.size, vmdkBytes: vmdk.size, seconds, builtAt: new Date().toISOString() }, null, 2) + '\n');
  // Older builds of other versions are left alone; stale staged apps are removed.
  for (const e of await readdir(cacheDir)) if (e.startsWith('app-') && !e.endsWith('.json') && path.join(cacheDir, e) !== app.dir) await rm(path.join(cacheDir, e), { recursive: true, force: true });
  log(`build-ova: wrote ${ova} (${(written.size / 1024 / 1024).toFixed(0)} MiB) in ${seconds.toFixed(0)} s\n`);
  return { ova, raw, kernel, version: app.version, digest, cached: false, bytes: written.size, seconds };
}
