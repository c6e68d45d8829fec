import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, stripUrlCredentials } from '../src/index.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, destination };
}

describe('logger redaction', () => {
  it('redacts passwords, cookies and keys by path', () => {
    const { lines, destination } = capture();
    const log = createLogger({ name: 't', destination });
    log.info({ password: 'p4ss', vcenter: { password: 'vc-pass', user: 'admin' }, headers: { cookie: 'vmware_soap_session=abc' } }, 'hello');
    const text = lines.join('');
    expect(text).not.toContain('p4ss');
    expect(text).not.toContain('vc-pass');
    expect(text).not.toContain('vmware_soap_session=abc');
    expect(text).toContain('admin');
  });

  it('strips credentials from URLs in messages', () => {
    const { lines, destination } = capture();
    createLogger({ name: 't', destination }).warn('cannot reach postgresql://vault:s3cret@db:5432/x');
    expect(lines.join('')).not.toContain('s3cret');
    expect(stripUrlCredentials('redis://:pw@h:6379 and https://u:p@h/sdk')).toBe('redis://***@h:6379 and https://***@h/sdk');
  });
});

describe('memoryLogger', () => {
  it('keeps every line, redacted like the real one', async () => {
    const { memoryLogger } = await import('../src/index.ts');
    const { log, lines } = memoryLogger('m');
    log.info({ password: 'pw-123' }, 'hello');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('hello');
    expect(lines[0]).not.toContain('pw-123');
  });
});

describe('createLogger with a file', () => {
  it('writes debug lines and above to the file as JSON (redacted), while the terminal keeps its own level', async () => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-log-'));
    const file = path.join(dir, 'logs', 'director.log');
    try {
      const log = createLogger({ name: 'file-test', level: 'warn', file });
      log.debug({ route: '/api/jobs' }, 'request completed');
      log.info('an info line');
      log.warn({ password: 'pw-9' }, 'a warning with a secret');
      // The transport writes from a worker thread: wait until the lines are in the file.
      const deadline = Date.now() + 10_000;
      let lines: Record<string, unknown>[] = [];
      while (Date.now() < deadline) {
        lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        if (lines.length >= 3) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(lines.map((l) => [l.level, l.msg])).toEqual([
        [20, 'request completed'],
        [30, 'an info line'],
        [40, 'a warning with a secret'],
      ]);
      expect(JSON.stringify(lines)).not.toContain('pw-9');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
