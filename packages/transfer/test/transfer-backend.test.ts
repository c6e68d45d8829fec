/**
 * TransporterBackend against a RepositoryServer on loopback, with certificates from a Transporter CA:
 * the same conformance suite as the local, SFTP and S3 backends, then what is particular to serving
 * a folder to another Transporter.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepositoryFullError } from '@vaultline/repository';
import { backendConformance } from '../../repository/test/backend-conformance.ts';
import { TransferError } from '../src/index.ts';
import { startFixture, type Fixture } from './fixture.ts';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture({ names: Array.from({ length: 8 }, (_, i) => `r${i}`) });
});
afterAll(() => fx?.stop());

let n = 0;
backendConformance('transporter (RepositoryServer on loopback, mutual TLS)', async () => {
  const backend = fx.connect({ repository: `r${n++}` });
  return { backend, cleanup: () => backend.close() };
});

describe('TransporterBackend', () => {
  it('stores into the served folder through LocalBackend: the bytes land under their names, no tmp file stays', async () => {
    const b = fx.connect({ repository: 'r7' });
    const data = Buffer.alloc(5 * 1024 * 1024 + 3, 9);
    const w = await b.openWriter('packs/ab/abcd.pack');
    await w.write(data.subarray(0, 1000));
    await w.write(data.subarray(1000), 0);
    await w.commit();
    expect(fs.readFileSync(path.join(fx.folders.r7!, 'packs/ab/abcd.pack')).equals(data)).toBe(true);
    expect(fs.readdirSync(path.join(fx.folders.r7!, 'packs/ab'))).toEqual(['abcd.pack']);
    expect(b.location).toBe(`transporter://127.0.0.1:${fx.server.port}/r7`);
    expect(b.kind).toBe('transporter');
  });

  it('counts the payload bytes it sends and receives', async () => {
    const b = fx.connect({ repository: 'r7' });
    await b.writeFileAtomic('count', Buffer.alloc(70_000, 1));
    expect(b.sent).toBe(70_000);
    await b.readRange('count', 100, 50_000);
    expect(b.received).toBe(50_000);
  });

  it('a write resolves only once the server has taken the bytes, so the caller may reuse its buffer', async () => {
    const b = fx.connect({ repository: 'r7' });
    const w = await b.openWriter('reuse');
    const buf = Buffer.alloc(2 * 1024 * 1024);
    const expected: Buffer[] = [];
    for (let i = 0; i < 8; i++) {
      buf.fill(i + 1);
      expected.push(Buffer.from(buf));
      await w.write(buf);
    }
    await w.commit();
    expect((await b.readFile('reuse')).equals(Buffer.concat(expected))).toBe(true);
  });

  it('an upload the storage cannot take fails with its error, and nothing is named', async () => {
    const b = fx.connect({ repository: 'r7' });
    // A file where the writer's directory should be: the server cannot create the tmp file.
    await b.writeFileAtomic('blocker', Buffer.from('x'));
    const err = await b.writeFileAtomic('blocker/inner', Buffer.alloc(10)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransferError);
    expect(err).toMatchObject({ status: 500, remoteCode: 'BACKEND', message: expect.stringMatching(/EEXIST|ENOTDIR/) });
    expect(fs.readdirSync(fx.folders.r7!)).not.toContain('inner');
    expect(fs.readFileSync(path.join(fx.folders.r7!, 'blocker'), 'utf8')).toBe('x');
  });

  it('an upload whose connection breaks off is discarded by the server', async () => {
    const b = fx.connect({ repository: 'r7' });
    const w = await b.openWriter('broken/file');
    await w.write(Buffer.alloc(3 * 1024 * 1024, 5));
    await b.close();
    await expect.poll(() => fs.readdirSync(path.join(fx.folders.r7!, 'broken')), { timeout: 5000 }).toEqual([]);
  });
});

// A 4 MiB tmpfs (mounting needs root) as the served folder: a 16 MiB upload cannot fit. Off root it is skipped;
// on CI (CI=true) vitest.config.ts refuses to run without root, so it cannot vanish there.
describe.runIf(process.getuid?.() === 0)('TransporterBackend on a full filesystem (4 MiB tmpfs)', () => {
  let small: Fixture;
  let mnt = '';
  beforeAll(async () => {
    mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'vl-transfer-enospc-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    small = await startFixture({ folders: { full: mnt } });
  });
  afterAll(async () => {
    await small?.stop();
    execFileSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('ENOSPC mid-upload reaches the client as RepositoryFullError, the upload is discarded and the space is free again', async () => {
    const b = small.connect({ repository: 'full' });
    const w = await b.openWriter('packs/aa/aa01.pack');
    const write = async () => {
      for (let i = 0; i < 16; i++) await w.write(Buffer.alloc(1024 * 1024, i));
      await w.commit();
    };
    const err = await write().catch((e: unknown) => e);
    await w.abort();
    expect(err).toBeInstanceOf(RepositoryFullError);
    expect(fs.readdirSync(path.join(mnt, 'packs/aa'))).toEqual([]);
    // The connection survived the refusal, or a new one is made: the next call goes through.
    await b.writeFileAtomic('after', Buffer.alloc(1024 * 1024, 1));
    expect((await b.readFile('after')).length).toBe(1024 * 1024);
  });
});
