import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Repository } from '@vaultline/repository';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

/** The fields of a repository's config file these tests change. */
interface StoredConfig {
  chunkSize: number;
  encryption: { kdf: { N: number } };
}

// The repository id, encryption flag, KDF parameters and config hash are recorded in PostgreSQL and
// compared on every open: a swapped config or repository is a 409 naming what differs (docs/repository-format.md §2.1).
describe('repository identity (real repositories on disk)', () => {
  const ctx = signedInDirector();
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-repo-identity-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const inject = (method: 'GET' | 'POST', url: string, payload?: object) => ctx.d.app.fastify.inject({ method, url, headers: { cookie: ctx.cookie }, ...(payload ? { payload } : {}) });
  const editConfig = async (location: string, edit: (c: StoredConfig) => void) => {
    const c = JSON.parse(await readFile(path.join(location, 'config'), 'utf8')) as StoredConfig;
    edit(c);
    await writeFile(path.join(location, 'config'), JSON.stringify(c, null, 2));
  };

  it('a created repository records its id, KDF parameters and config hash; a lowered KDF on storage is then a 409 naming it', async () => {
    const location = path.join(dir, 'created');
    const res = await inject('POST', '/api/repositories', { kind: 'local', name: 'created', location, passphrase: 'identity passphrase' });
    expect(res.statusCode).toBe(201);
    const raw = await readFile(path.join(location, 'config'));
    const config = JSON.parse(raw.toString()) as { id: string; encryption: { kdf: { N: number; r: number; p: number; salt: string } } };
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { id: res.json().id } });
    expect(row).toMatchObject({ encrypted: true, repositoryUid: config.id, configSha256: createHash('sha256').update(raw).digest('hex') });
    const { N, r, p, salt } = config.encryption.kdf;
    expect(row.kdfParams).toEqual({ N, r, p, salt });
    expect((await inject('GET', `/api/repositories/${row.id}/stats`)).statusCode).toBe(200);

    await editConfig(location, (c) => {
      c.encryption.kdf.N = 1024;
    });
    const refused = await inject('GET', `/api/repositories/${row.id}/stats`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'conflict', message: expect.stringMatching(new RegExp(`KDF is scrypt N=1024 r=8 p=1 salt .*, recorded scrypt N=${N} r=8 p=1`)) });
  });

  it('another repository put at the recorded location is a 409 naming both ids', async () => {
    const location = path.join(dir, 'swapped');
    const res = await inject('POST', '/api/repositories', { kind: 'local', name: 'swapped', location });
    expect(res.statusCode).toBe(201);
    const recorded = (await ctx.d.db.repository.findUniqueOrThrow({ where: { id: res.json().id } })).repositoryUid;
    await rm(location, { recursive: true });
    const other = await Repository.init(location);
    const refused = await inject('GET', `/api/repositories/${res.json().id}/stats`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toMatch(new RegExp(`repository id is ${other.id}, recorded ${recorded}`));
  });

  it('adopting an unencrypted repository with a passphrase is refused; without one it is adopted and recorded', async () => {
    const location = path.join(dir, 'plain');
    const identity = await Repository.init(location);
    const refused = await inject('POST', '/api/repositories', { kind: 'local', name: 'plain', location, passphrase: 'would protect nothing' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toMatch(/is not encrypted, but a passphrase was given/);
    expect(await ctx.d.db.repository.findUnique({ where: { name: 'plain' } })).toBeNull();

    const adopted = await inject('POST', '/api/repositories', { kind: 'local', name: 'plain', location });
    expect(adopted.statusCode).toBe(201);
    expect(adopted.json()).toMatchObject({ encrypted: false });
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { name: 'plain' } });
    expect(row).toMatchObject({ repositoryUid: identity.id, configSha256: identity.configSha256, kdfParams: null });
  });

  it('a row from before identities were recorded gets one at its first open, and is held to it from then on', async () => {
    const location = path.join(dir, 'legacy');
    const identity = await Repository.init(location);
    const row = await ctx.d.db.repository.create({ data: { name: 'legacy', location } });
    expect(row.repositoryUid).toBeNull();
    expect((await inject('GET', `/api/repositories/${row.id}/stats`)).statusCode).toBe(200);
    expect(await ctx.d.db.repository.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({ repositoryUid: identity.id, configSha256: identity.configSha256 });

    await editConfig(location, (c) => {
      c.chunkSize = 1024 * 1024;
    });
    const refused = await inject('GET', `/api/repositories/${row.id}/stats`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json().message).toMatch(/config file SHA-256 is [0-9a-f]{64}, recorded [0-9a-f]{64}/);
  });
});
