import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startSshLab } from '../src/index.ts';

describe('the sshd lab on 127.0.0.1', () => {
  it('lets its user in with the key only, rotates the host key on the same port, and removes everything on stop', async () => {
    const lab = await startSshLab({ userPrefix: 'vllab' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vl-sshlab-client-'));
    const ssh = (extra: string[], known: string) =>
      execFileSync('ssh', ['-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=accept-new', '-o', 'BatchMode=yes', '-p', String(lab.port), ...extra, `${lab.user}@127.0.0.1`, 'id -u'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    try {
      const key = path.join(dir, 'key');
      writeFileSync(key, lab.privateKey, { mode: 0o600 });
      expect(ssh(['-i', key], path.join(dir, 'known1'))).toBe(String(lab.uid));
      // Without the key (BatchMode: no password prompt) the user is refused.
      expect(() => ssh(['-o', 'IdentitiesOnly=yes', '-o', 'IdentityFile=/dev/null'], path.join(dir, 'known2'))).toThrow(/Permission denied/);
      const before = lab.hostKeyFingerprint();
      await lab.rotateHostKey();
      expect(lab.hostKeyFingerprint()).not.toBe(before);
      expect(() => ssh(['-i', key], path.join(dir, 'known1'))).toThrow(/HOST IDENTIFICATION HAS CHANGED/);
    } finally {
      await lab.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(existsSync(lab.home)).toBe(false);
    expect(() => execFileSync('id', [lab.user], { stdio: 'ignore' })).toThrow();
  });
});
