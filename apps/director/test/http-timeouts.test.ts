import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { pinnedAgent } from '@vaultline/tls';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_TIMEOUTS } from '../src/app.ts';
import { PLAIN_HTTP_TIMEOUT_MS } from '../src/https.ts';
import { signInAdmin, startTestDirector, type TestDirector } from './helpers.ts';
import { createRestorePoint } from './restore-point-fixture.ts';

const MiB = 1024 * 1024;

describe('HTTP timeouts: a slow client cannot hold a connection, a long download is not cut', () => {
  it('the Director sets them: a request must arrive within 30 s, a connection silent for 10 min is closed, keep-alive lasts 65 s', async () => {
    const d = await startTestDirector();
    try {
      const server = d.app.fastify.server;
      expect(HTTP_TIMEOUTS).toEqual({ requestTimeout: 30_000, connectionTimeout: 600_000, keepAliveTimeout: 65_000 });
      expect({ requestTimeout: server.requestTimeout, connectionTimeout: server.timeout, keepAliveTimeout: server.keepAliveTimeout }).toEqual(HTTP_TIMEOUTS);
    } finally {
      await d.close();
    }
  });

  describe('with the idle-connection timeout shortened to 2 s', () => {
    let d: TestDirector;
    let cookie: string;
    let dir: string;
    let port: number;
    let pointId: string;
    const image = randomBytes(16 * MiB);
    beforeAll(async () => {
      d = await startTestDirector({ extra: () => ({ httpTimeouts: { connectionTimeout: 2_000 } }) });
      cookie = await signInAdmin(d);
      dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-timeouts-'));
      pointId = await createRestorePoint(d, dir, { name: 'web01', uuid: 'vm-uuid-timeouts' }, [{ key: '2000', image, controller: 'pvscsi' }]);
      await d.app.fastify.listen({ host: '127.0.0.1', port: 0 });
      port = (d.app.fastify.server.address() as net.AddressInfo).port;
    }, 60_000);
    afterAll(async () => {
      await d?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('a client that sends half a request and goes silent is disconnected', async () => {
      const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
      socket.write('GET /api/health HTTP/1.1\r\nHost: director\r\n');
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    });

    it('so is a plain-HTTP client that sends half a request (it would only get a redirect)', async () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.write('GET /api/health HTTP/1.1\r\nHost: director\r\n');
      const started = Date.now();
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(Date.now() - started).toBeLessThan(PLAIN_HTTP_TIMEOUT_MS + 5_000);
    }, 30_000);

    it('a download read slowly, for longer than that timeout in all, arrives whole', async () => {
      const received = await new Promise<Buffer>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, agent: pinnedAgent(d.tls.fingerprint), path: `/api/restore-points/${pointId}/disks/2000/download?format=raw`, headers: { cookie } }, (res) => {
            const parts: Buffer[] = [];
            let sinceBreak = 0;
            res.on('data', (b: Buffer) => {
              parts.push(b);
              sinceBreak += b.length;
              // A 300 ms break after every MiB: over 4 s in all, never 2 s of silence.
              if (sinceBreak >= MiB) {
                sinceBreak = 0;
                res.pause();
                setTimeout(() => res.resume(), 300);
              }
            });
            res.on('end', () => resolve(Buffer.concat(parts)));
            res.on('error', reject);
          })
          .on('error', reject);
      });
      expect(received.length).toBe(image.length);
      expect(received.equals(image)).toBe(true);
    }, 60_000);
  });
});
