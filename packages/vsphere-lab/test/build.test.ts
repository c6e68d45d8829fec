import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildLabServer, ensureToolchain } from '../src/index.ts';

describe('lab server build', () => {
  it('builds from Debian packages once and reuses the cached binary (a later call takes well under a second)', async () => {
    const bin = await buildLabServer(); // may be a cold build
    expect(fs.statSync(bin).mode & 0o111).not.toBe(0);
    const t = Date.now();
    expect(await buildLabServer()).toBe(bin);
    expect(Date.now() - t).toBeLessThan(1000);
  }, 300_000); // a cold build takes 30-75 s on 2 cores

  it('without govmomi sources and without root, it fails with a message naming the Debian packages to install', async () => {
    await expect(ensureToolchain({ debianGopath: '/nonexistent-gopath', root: false })).rejects.toThrow(
      /apt-get install -y golang-go golang-github-vmware-govmomi-dev[\s\S]*\/nonexistent-gopath\/src\/github.com\/vmware\/govmomi/,
    );
  });
});
