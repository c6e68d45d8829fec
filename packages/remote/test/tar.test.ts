import { execFileSync } from 'node:child_process';
import { createWriteStream, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTar } from '../src/tar.ts';

describe('the bundle tar writer, read back by GNU tar', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-tar-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps files, modes, folders, symlinks and names longer than ustar allows', async () => {
    const src = path.join(dir, 'src.bin');
    const bytes = Buffer.alloc(70_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    writeFileSync(src, bytes);
    const longDir = `app/node_modules/${'a'.repeat(120)}`;
    const longName = `${longDir}/${'b'.repeat(110)}.js`;
    const tarFile = path.join(dir, 'out.tar');
    const out = createWriteStream(tarFile);
    await writeTar(
      [
        { type: 'dir', path: 'app', mode: 0o755, mtime: 0 },
        { type: 'file', path: 'app/data.bin', mode: 0o644, size: bytes.length, mtime: 1_700_000_000, source: src },
        { type: 'file', path: 'bin/run', mode: 0o755, mtime: 0, content: Buffer.from('#!/bin/sh\necho hi\n') },
        { type: 'symlink', path: 'app/link', target: '../bin/run', mtime: 0 },
        { type: 'file', path: longName, mode: 0o644, mtime: 0, content: Buffer.from('long') },
        { type: 'symlink', path: 'app/longlink', target: `../${'c'.repeat(150)}`, mtime: 0 },
      ],
      out,
    );
    out.end();
    await finished(out);
    const into = path.join(dir, 'x');
    execFileSync('mkdir', [into]);
    execFileSync('tar', ['-xf', tarFile, '-C', into, '--no-same-owner']);
    expect(readFileSync(path.join(into, 'app/data.bin')).equals(bytes)).toBe(true);
    expect(statSync(path.join(into, 'bin/run')).mode & 0o777).toBe(0o755);
    expect(statSync(path.join(into, 'app/data.bin')).mtimeMs).toBe(1_700_000_000_000);
    expect(readlinkSync(path.join(into, 'app/link'))).toBe('../bin/run');
    expect(execFileSync(path.join(into, 'app/link'), { encoding: 'utf8' })).toBe('hi\n');
    expect(readFileSync(path.join(into, longName), 'utf8')).toBe('long');
    expect(lstatSync(path.join(into, 'app/longlink')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(into, 'app/longlink'))).toBe(`../${'c'.repeat(150)}`);
  });

  it('refuses a file that changed size while it was bundled', async () => {
    const src = path.join(dir, 'grows');
    writeFileSync(src, 'abc');
    const out = createWriteStream(path.join(dir, 'bad.tar'));
    await expect(writeTar([{ type: 'file', path: 'g', mode: 0o644, size: 10, mtime: 0, source: src }], out)).rejects.toThrow(/shrank while it was being bundled/);
    // End (not destroy) the stream: destroying it under a write still in flight raised an uncaught ERR_STREAM_DESTROYED.
    out.end();
    await finished(out);
  });
});
