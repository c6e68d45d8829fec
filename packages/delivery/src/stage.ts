/**
 * The Vaultline application as the appliance and the Docker image run it
 * (/opt/vaultline): the Director, the Transporter and the CLI with the
 * workspace packages they import (TypeScript source, run through tsx, as
 * `npm start` runs them), exactly their production node_modules (found by
 * @vaultline/remote's closure walk, the same one the remote Transporter bundle
 * uses), the built web console and the database migrations. No tests, no
 * benches, no dev dependencies, no build tools.
 */
import { cp, lstat, mkdir, readFile, rename, rm, symlink, readlink, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { workspaceClosure } from '@vaultline/remote';
import { BuildError, exists, treeDigest } from './exec.ts';

/** The apps the appliance runs; their closure is the staged tree. */
export const STAGED_APPS = ['apps/director', 'apps/transporter', 'apps/cli'];
/** Folders copied as they are, besides the closure. */
export const STAGED_EXTRA_DIRS = ['apps/web/dist', 'prisma/migrations'];

export interface StagedApp {
  /** The staged tree (its layout is the repository's). */
  dir: string;
  /** treeDigest of `dir`. */
  digest: string;
  /** The Director's version (apps/director/package.json). */
  version: string;
}

export async function appVersion(rootDir: string): Promise<string> {
  return (JSON.parse(await readFile(path.join(rootDir, 'apps/director/package.json'), 'utf8')) as { version: string }).version;
}

/** Copies the staged tree into `outDir` (which must not exist). */
export async function stageInto(rootDir: string, outDir: string): Promise<void> {
  for (const [dir, hint] of [
    ['apps/web/dist/index.html', 'build the web console first (npm run build, or npm run setup)'],
    ['packages/db/src/generated', 'generate the Prisma client first (npm run setup)'],
  ] as const) {
    if (!(await exists(path.join(rootDir, dir)))) throw new BuildError(`cannot stage Vaultline: ${dir} is missing; ${hint}`);
  }
  const { rootDir: real, paths } = await workspaceClosure({ rootDir, apps: STAGED_APPS, extra: ['tsx'], what: 'Vaultline' });
  await mkdir(outDir, { recursive: true });
  for (const full of paths) {
    const rel = path.relative(real, full);
    const dest = path.join(outDir, rel);
    const st = await lstat(full);
    if (st.isSymbolicLink()) {
      await mkdir(path.dirname(dest), { recursive: true });
      await symlink(await readlink(full), dest);
    } else if (st.isDirectory()) {
      await mkdir(dest, { recursive: true });
      await chmod(dest, 0o755);
    } else if (st.isFile()) {
      await mkdir(path.dirname(dest), { recursive: true });
      await cp(full, dest, { preserveTimestamps: false });
      await chmod(dest, st.mode & 0o100 ? 0o755 : 0o644);
    }
  }
  for (const dir of STAGED_EXTRA_DIRS) {
    await rm(path.join(outDir, dir), { recursive: true, force: true });
    await cp(path.join(real, dir), path.join(outDir, dir), { recursive: true });
  }
}

/**
 * Stages the app into `<cacheDir>/app-<digest>` (kept while its digest is
 * current: a second build with the same sources reuses it).
 */
export async function stageApp(opts: { rootDir: string; cacheDir: string }): Promise<StagedApp> {
  await mkdir(opts.cacheDir, { recursive: true });
  const tmp = path.join(opts.cacheDir, `app-tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    await stageInto(opts.rootDir, tmp);
    const digest = await treeDigest(tmp);
    const dir = path.join(opts.cacheDir, `app-${digest.slice(0, 16)}`);
    if (await exists(dir)) await rm(tmp, { recursive: true, force: true });
    else await rename(tmp, dir);
    const version = await appVersion(opts.rootDir);
    await writeFile(path.join(opts.cacheDir, 'app-latest.json'), JSON.stringify({ dir, digest, version }) + '\n');
    return { dir, digest, version };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
