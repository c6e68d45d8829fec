import * as net from 'node:net';

/**
 * A TCP port free on 127.0.0.1 at the moment of asking (the kernel picks it), for a lab service or a
 * test server to listen on next. Another process may take it in between; callers that bind right away
 * rarely lose that race.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
