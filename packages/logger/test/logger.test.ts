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
