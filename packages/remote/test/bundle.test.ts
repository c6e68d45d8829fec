import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { transporterBundle } from '../src/bundle.ts';

/** A small workspace in the repository's layout: hoisted node_modules, a nested one, a workspace symlink. */
function workspace(root: string): void {
  const put = (rel: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  };
  const pkg = (rel: string, name: string, deps: Record<string, string> = {}, extra: object = {}) => put(`${rel}/package.json`, JSON.stringify({ name, version: '1.0.0', dependencies: deps, ...extra }));
  put('package.json', JSON.stringify({ name: 'root', private: true, workspaces: ['apps/*', 'packages/*'] }));
  put('tsconfig.base.json', '{}');
  pkg('apps/transporter', '@x/transporter', { '@x/lib': '1.0.0', 'dep-a': '1' }, { devDependencies: { 'dev-only': '1' } });
  put('apps/transporter/src/main.ts', 'console.log(1)');
  put('apps/transporter/src/main.test.ts', 'test');
  put('apps/transporter/test/x.test.ts', 'test');
  pkg('packages/lib', '@x/lib', { 'dep-b': '2' });
  put('packages/lib/src/index.ts', 'export {}');
  mkdirSync(path.join(root, 'node_modules/@x'), { recursive: true });
  symlinkSync('../../packages/lib', path.join(root, 'node_modules/@x/lib'));
  symlinkSync('../../apps/transporter', path.join(root, 'node_modules/@x/transporter'));
  pkg('node_modules/dep-a', 'dep-a', { 'dep-b': '1' }, { optionalDependencies: { 'not-installed': '1' }, peerDependencies: { 'peer-opt': '1' }, peerDependenciesMeta: { 'peer-opt': { optional: true } } });
  put('node_modules/dep-a/index.js', 'a');
  pkg('node_modules/dep-a/node_modules/dep-b', 'dep-b');
  put('node_modules/dep-a/node_modules/dep-b/index.js', 'b1');
  pkg('node_modules/dep-b', 'dep-b');
  put('node_modules/dep-b/index.js', 'b2');
  pkg('node_modules/dev-only', 'dev-only');
  pkg('node_modules/peer-opt', 'peer-opt');
  pkg('node_modules/tsx', 'tsx', { esbuild: '1' });
  pkg('node_modules/esbuild', 'esbuild');
}

describe('the Transporter bundle', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-bundle-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the node binary, the app, its workspace packages and exactly its production dependencies', async () => {
    const root = path.join(dir, 'repo');
    workspace(root);
    const b = await transporterBundle({ rootDir: root, version: '9.9.9', cacheDir: path.join(dir, 'cache'), nodeBinary: '/bin/true' });
    expect(b).toMatchObject({ version: '9.9.9', machine: 'x86_64', nodeVersion: process.version });
    expect(b.glibcRequired).toMatch(/^2\.\d+$/);
    const out = path.join(dir, 'out');
    mkdirSync(out);
    execFileSync('tar', ['-xzf', b.file, '-C', out]);
    const listed = execFileSync('find', ['.', '-mindepth', '1'], { cwd: out, encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    for (const want of ['./node', './bin/transporter', './bin/supervise', './BUNDLE.json', './app/package.json', './app/tsconfig.base.json', './app/apps/transporter/src/main.ts', './app/packages/lib/src/index.ts', './app/node_modules/@x/lib', './app/node_modules/dep-a/index.js', './app/node_modules/dep-a/node_modules/dep-b/index.js', './app/node_modules/dep-b/index.js', './app/node_modules/tsx/package.json', './app/node_modules/esbuild/package.json']) {
      expect(listed).toContain(want);
    }
    for (const not of ['./app/node_modules/dev-only', './app/node_modules/peer-opt', './app/apps/transporter/test', './app/apps/transporter/src/main.test.ts', './app/node_modules/@x/transporter']) {
      expect(listed).not.toContain(not);
    }
    expect(readFileSync(path.join(out, 'app/node_modules/@x/lib/src/index.ts'), 'utf8')).toBe('export {}');
    expect(JSON.parse(readFileSync(path.join(out, 'BUNDLE.json'), 'utf8'))).toMatchObject({ version: '9.9.9', digest: b.digest });

    // Same content, same digest and the cached file; a changed file, a new digest and only the new file kept.
    expect((await transporterBundle({ rootDir: root, version: '9.9.9', cacheDir: path.join(dir, 'cache'), nodeBinary: '/bin/true' })).file).toBe(b.file);
    writeFileSync(path.join(root, 'packages/lib/src/index.ts'), 'export const x = 1');
    const c = await transporterBundle({ rootDir: root, version: '9.9.9', cacheDir: path.join(dir, 'cache2'), nodeBinary: '/bin/true' });
    expect(c.digest).not.toBe(b.digest);
    expect(existsSync(c.file)).toBe(true);
  });

  it('says which production dependency is missing', async () => {
    const root = path.join(dir, 'broken');
    workspace(root);
    rmSync(path.join(root, 'node_modules/dep-b'), { recursive: true });
    await expect(transporterBundle({ rootDir: root, version: '1', cacheDir: path.join(dir, 'c3'), nodeBinary: '/bin/true' })).rejects.toThrow('cannot bundle the Transporter: @x/lib needs dep-b, which is not installed (run npm ci)');
  });
});
