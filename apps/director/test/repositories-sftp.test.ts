import { startSshLab, type SshLab } from '@vaultline/ssh-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedInDirector } from './helpers.ts';

describe('an SFTP repository pins its server\'s SSH host key (real sshd on loopback)', () => {
  const ctx = signedInDirector();
  let lab: SshLab;
  beforeAll(async () => {
    lab = await startSshLab({ userPrefix: 'vlrepo' });
  }, 60_000);
  afterAll(async () => {
    await lab?.stop();
  });
  const add = (extra: object = {}) =>
    ctx.d.app.fastify.inject({
      method: 'POST',
      url: '/api/repositories',
      headers: { cookie: ctx.cookie },
      payload: { kind: 'sftp', name: 'nas', location: `sftp://${lab.user}@127.0.0.1:${lab.port}${lab.home}/repo`, privateKey: lab.privateKey, ...extra },
    });

  it('first shows the host key to confirm, refuses a different one, then adds the repository with the key pinned', async () => {
    const first = await add();
    expect(first.statusCode).toBe(409);
    expect(first.json()).toMatchObject({ code: 'host_key_confirmation_required', hostKeySha256: lab.hostKeyFingerprint() });
    expect(await ctx.d.db.repository.count({ where: { name: 'nas' } })).toBe(0);

    const wrong = await add({ hostKeySha256: 'SHA256:someoneElsesKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toContain(`presents SSH host key ${lab.hostKeyFingerprint()}, not the confirmed SHA256:someoneElsesKey`);

    const ok = await add({ hostKeySha256: lab.hostKeyFingerprint() });
    expect(ok.statusCode, ok.body).toBe(201);
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { name: 'nas' } });
    expect(row.sftpHostKeySha256).toBe(lab.hostKeyFingerprint());
    const stats = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/${row.id}/stats`, headers: { cookie: ctx.cookie } });
    expect(stats.statusCode, stats.body).toBe(200);
  });

  it('once the server presents another key, every use of the repository is refused, naming both keys', async () => {
    const row = await ctx.d.db.repository.findUniqueOrThrow({ where: { name: 'nas' } });
    const pinned = lab.hostKeyFingerprint();
    await lab.rotateHostKey();
    const stats = await ctx.d.app.fastify.inject({ method: 'GET', url: `/api/repositories/${row.id}/stats`, headers: { cookie: ctx.cookie } });
    expect(stats.statusCode).toBe(503);
    expect(stats.json().message).toContain(`presents SSH host key ${lab.hostKeyFingerprint()}, not the pinned ${pinned}`);
  });
});
