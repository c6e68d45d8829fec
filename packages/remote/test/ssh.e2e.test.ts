/**
 * Signing in to a real OpenSSH sshd on 127.0.0.1 (key-only user, then a user
 * with a password): host key probe, pinned sessions, every credential form.
 * Nothing is copied here; the bundle copy is tested through the Director.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSshLab, type SshLab } from '@vaultline/ssh-lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHost, probeHostKey, RemoteProblem, RemoteSession, type TransporterBundle } from '../src/index.ts';

/** Only what the host check reads; nothing of it is copied. */
const descriptor = { machine: 'x86_64', glibcRequired: '2.17', unpackedBytes: 1024 * 1024 } as TransporterBundle;

async function kindOf(p: Promise<unknown>): Promise<RemoteProblem> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof RemoteProblem)) throw new Error(`expected a RemoteProblem, got ${String(err)}`);
  return err;
}

describe('SSH sessions to a real sshd on 127.0.0.1', () => {
  let key: SshLab;
  let pw: SshLab;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-remote-ssh-'));
  let encryptedKey = '';

  beforeAll(async () => {
    [key, pw] = await Promise.all([startSshLab({ userPrefix: 'vlkey' }), startSshLab({ userPrefix: 'vlpw', password: 'correct horse 42' })]);
    // A passphrase-protected key the key-only user also accepts.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'open sesame', '-f', path.join(dir, 'enc')]);
    appendFileSync(path.join(key.home, '.ssh', 'authorized_keys'), readFileSync(path.join(dir, 'enc.pub')));
    encryptedKey = readFileSync(path.join(dir, 'enc'), 'utf8');
  }, 120_000);

  afterAll(async () => {
    await key?.stop();
    await pw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const target = (lab: SshLab, credential: Parameters<typeof RemoteSession.open>[0]['credential']) => ({ host: lab.host, port: lab.port, username: lab.user, credential, hostKeySha256: lab.hostKeyFingerprint() });

  it('reads the host key fingerprint without signing in, as ssh-keygen -l prints it', async () => {
    const seen = await probeHostKey({ host: key.host, port: key.port });
    const pub = path.join(dir, 'host.pub');
    writeFileSync(pub, key.hostKeyLine() + '\n');
    const keygen = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pub], { encoding: 'utf8' }).split(' ')[1];
    expect(seen).toEqual({ sha256: keygen, keyType: 'ssh-ed25519' });
  });

  it('signs in with a key, a passphrase-protected key and a password, and runs sh as that user', async () => {
    for (const [lab, cred] of [
      [key, { privateKey: key.privateKey }],
      [key, { privateKey: encryptedKey, passphrase: 'open sesame' }],
      [pw, { password: 'correct horse 42' }],
    ] as const) {
      const s = await RemoteSession.open(target(lab, cred));
      try {
        expect((await s.sh('id -u')).stdout.trim()).toBe(String(lab.uid));
      } finally {
        s.dispose();
      }
    }
    const check = await checkHost({ ...target(pw, { password: 'correct horse 42' }) }, descriptor);
    expect(check).toMatchObject({ installDir: `${pw.home}/.vaultline-transporter`, facts: { os: 'Linux', user: pw.user, systemd: false } });
  });

  it('names each way of failing to sign in', async () => {
    expect((await kindOf(RemoteSession.open(target(pw, { password: 'wrong' })))).kind).toBe('auth');
    const wrongPass = await kindOf(RemoteSession.open(target(key, { privateKey: encryptedKey, passphrase: 'nope' })));
    expect(wrongPass.kind).toBe('credentials');
    const noPass = await kindOf(RemoteSession.open(target(key, { privateKey: encryptedKey })));
    expect(noPass.kind).toBe('credentials');
    expect(noPass.message).toMatch(/passphrase/i);
    const garbage = await kindOf(RemoteSession.open(target(key, { privateKey: 'not a key' })));
    expect(garbage.message).toMatch(/^the private key cannot be used/);
  });

  it('refuses a host whose key is not the pinned one, naming both fingerprints', async () => {
    const pinned = pw.hostKeyFingerprint();
    const p = await kindOf(RemoteSession.open({ ...target(key, { privateKey: key.privateKey }), hostKeySha256: pinned }));
    expect(p.kind).toBe('host_key');
    expect(p.message).toContain(`it now presents ${key.hostKeyFingerprint()}, but ${pinned} was confirmed`);
  });
});
