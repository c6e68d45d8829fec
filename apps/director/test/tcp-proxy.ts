/**
 * A loopback TCP proxy whose far side can be "switched off": closing it refuses
 * new connections and cuts the open ones, exactly what a client sees when the
 * server behind it stops. Lets a test take Postgres or Redis away from one
 * Director without stopping the shared server other tests use. Stalling it
 * keeps the connections open but forwards nothing, like a server that hangs.
 */
import net from 'node:net';

export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private stalled = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async up(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (b: Buffer) => void (this.stalled || upstream.write(b)));
      upstream.on('data', (b: Buffer) => void (this.stalled || client.write(b)));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** From now on nothing passes either way (what was sent is dropped); connections stay open. */
  stall(): void {
    this.stalled = true;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
