/**
 * SFTP backend against a real OpenSSH sshd on 127.0.0.1 (random free port, own
 * host key, a key-only user), started here and killed afterwards.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSshLab, type SshLab } from '@vaultline/ssh-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyMismatchError, probeSftpHostKey, SftpBackend } from '../src/index.ts';
import { backendConformance } from './backend-conformance.ts';

let lab: SshLab;

beforeAll(async () => {
  lab = await startSshLab({ userPrefix: 'vlsftp' });
}, 60_000);

afterAll(async () => {
  await lab?.stop();
});

const connect = (root: string, pin: { hostKey?: Buffer; hostKeySha256?: string }) =>
  SftpBackend.connect({ host: lab.host, port: lab.port, username: lab.user, privateKey: lab.privateKey, root, ...pin });

let n = 0;
backendConformance('sftp (OpenSSH sshd on loopback)', async () => {
  const root = path.join(lab.home, `repo-${n++}`);
  const backend = await connect(root, { hostKey: Buffer.from(lab.hostKeyLine()) });
  return {
    backend,
    cleanup: async () => {
      await backend.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
});

describe('sftp host key pinning (OpenSSH sshd on loopback)', () => {
  it('the probe reads the fingerprint ssh-keygen prints, without signing in', async () => {
    expect(await probeSftpHostKey(lab.host, lab.port)).toBe(lab.hostKeyFingerprint());
  });

  it('connects when the pinned fingerprint matches, and refuses another key naming both fingerprints', async () => {
    const ok = await connect(path.join(lab.home, 'pinned'), { hostKeySha256: lab.hostKeyFingerprint() });
    await ok.close();
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const err = await connect(path.join(lab.home, 'pinned'), { hostKeySha256: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as Error).message).toBe(`127.0.0.1 presents SSH host key ${lab.hostKeyFingerprint()}, not the pinned ${wrong}; refusing to connect (if the server was reinstalled, confirm its new key)`);
  });

  it('after the server gets a new host key, the old pin refuses it', async () => {
    const before = lab.hostKeyFingerprint();
    await lab.rotateHostKey();
    expect(lab.hostKeyFingerprint()).not.toBe(before);
    const err = await connect(path.join(lab.home, 'pinned'), { hostKeySha256: before }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`presents SSH host key ${lab.hostKeyFingerprint()}, not the pinned ${before}`);
  });

  it('an address with no SSH server is a clear error', async () => {
    const err = await probeSftpHostKey('127.0.0.1', 1).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^cannot reach the SSH server 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
