/**
 * The NFS server: NFS v3, MOUNT v3 and PORTMAP v2 on one TCP port, PORTMAP
 * alone on a second port when asked (ESXi asks the portmapper on 111).
 *
 * Requests on a connection run concurrently, up to `maxInFlight`; past that
 * the socket is paused, so a client that pipelines cannot make the server
 * buffer more than maxInFlight records of at most `maxRecord` bytes each, and
 * at most `maxConnections` connections are served at once, at most
 * `maxConnectionsPerClient` from one address (idle ones are closed
 * after `idleTimeoutMs`). A record over the cap,
 * or one that is not an RPC call, closes the connection; anything malformed
 * inside a call is answered GARBAGE_ARGS or an AUTH_ERROR.
 *
 * Who may do what is decided by the client's IP address alone (each export's
 * allowed list); AUTH_SYS credentials are read but not trusted.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { MOUNT_PROGRAM, MOUNT_VERSION, MountProgram } from './mount.ts';
import { NFS_PROGRAM, NFS_VERSION, Nfs3Program } from './nfs3.ts';
import { PORTMAP_PROGRAM, PORTMAP_VERSION, PortmapProgram } from './portmap.ts';
import { ExportRegistry } from './registry.ts';
import { AcceptStat, acceptedReply, DEFAULT_MAX_RECORD, frame, parseCall, progMismatch, RecordParser, RpcHeaderError, simpleAccepted, type RpcCall } from './rpc.ts';
import type { ExportCounters, ExportOptions } from './tree.ts';
import { XdrError, type XdrWriter } from './xdr.ts';

export interface NfsLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface NfsServerOptions {
  /** Address to listen on (e.g. the appliance's address on the ESXi network). */
  host: string;
  /** Port for NFS, MOUNT and PORTMAP (0 = any free port). */
  port: number;
  /** When set, a PORTMAP-only listener on this port too (111 for ESXi; 0 = any free port). */
  portmapPort?: number;
  exports: ExportOptions[];
  logger?: NfsLogger;
  /** Concurrent connections over both ports (default 64); more are closed at once. */
  maxConnections?: number;
  /** Concurrent connections from one client address (default 16; ESXi opens up to NFS.MaxConnPerIP, 4 by default). */
  maxConnectionsPerClient?: number;
  /** Requests processed at once per connection (default 16). */
  maxInFlight?: number;
  /** Largest RPC record in bytes (default 4 MiB + 4 KiB). */
  maxRecord?: number;
  /** A connection with no traffic for this long is closed (default 5 minutes; ESXi sends a heartbeat every few seconds). */
  idleTimeoutMs?: number;
}

export interface NfsServerAddress {
  host: string;
  port: number;
  portmapPort: number | null;
}

type Programs = 'all' | 'portmap';

const quiet: NfsLogger = { info: () => undefined, warn: () => undefined };

export class NfsServer {
  private readonly registry = new ExportRegistry();
  private readonly nfs = new Nfs3Program(this.registry);
  private readonly mount = new MountProgram(this.registry);
  private readonly portmap = new PortmapProgram(() => this.address().port);
  private readonly writeVerifier = randomBytes(8);
  private readonly log: NfsLogger;
  private readonly sockets = new Set<net.Socket>();
  private main: net.Server | null = null;
  private pmap: net.Server | null = null;
  private readonly maxConnections: number;
  private readonly maxPerClient: number;
  private readonly perClient = new Map<string, number>();
  private readonly maxInFlight: number;
  private readonly maxRecord: number;
  private readonly idleTimeoutMs: number;

  constructor(private readonly opts: NfsServerOptions) {
    this.log = opts.logger ?? quiet;
    this.maxConnections = opts.maxConnections ?? 64;
    this.maxPerClient = opts.maxConnectionsPerClient ?? 16;
    this.maxInFlight = opts.maxInFlight ?? 16;
    this.maxRecord = opts.maxRecord ?? DEFAULT_MAX_RECORD;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 5 * 60_000;
  }

  async listen(): Promise<void> {
    if (this.main) throw new Error('the NFS server is already listening');
    for (const e of this.opts.exports) await this.addExport(e);
    this.main = await this.listenOn(this.opts.port, 'all');
    if (this.opts.portmapPort !== undefined) {
      try {
        this.pmap = await this.listenOn(this.opts.portmapPort, 'portmap');
      } catch (err) {
        await this.close();
        throw err;
      }
    }
    this.log.info(`NFS server listening on ${this.opts.host}:${this.address().port} with ${this.registry.all().length} export(s)`);
  }

  address(): NfsServerAddress {
    const a = this.main?.address();
    if (!a || typeof a === 'string') throw new Error('the NFS server is not listening');
    const p = this.pmap?.address();
    return { host: a.address, port: a.port, portmapPort: p && typeof p !== 'string' ? p.port : null };
  }

  async addExport(e: ExportOptions): Promise<void> {
    const tree = await this.registry.add(e);
    this.log.info(`NFS export ${tree.name} added for ${[...tree.allowedClients].join(', ') || 'no client'}`);
  }

  /** Removes an export; its handles answer NFS3ERR_STALE from now on. */
  removeExport(name: string): boolean {
    const tree = this.registry.get(name);
    if (!tree || !this.registry.remove(name)) return false;
    this.mount.forgetExport(tree.name);
    this.log.info(`NFS export ${tree.name} removed`);
    return true;
  }

  /** Bytes read from the base files and read from / written to the overlay, since the export was added. */
  counters(name: string): ExportCounters {
    const tree = this.registry.get(name);
    if (!tree) throw new Error(`no NFS export named ${name}`);
    return { ...tree.counters };
  }

  exportNames(): string[] {
    return this.registry.all().map((t) => t.name);
  }

  async close(): Promise<void> {
    const servers = [this.main, this.pmap].filter((s): s is net.Server => s !== null);
    this.main = null;
    this.pmap = null;
    for (const s of this.sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private async listenOn(port: number, programs: Programs): Promise<net.Server> {
    const server = net.createServer((socket) => this.accept(socket, programs));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.opts.host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server;
  }

  private accept(socket: net.Socket, programs: Programs): void {
    const address = socket.remoteAddress ?? '';
    if (this.sockets.size >= this.maxConnections) {
      this.log.warn(`NFS connection from ${address} refused: ${this.maxConnections} connections are open`);
      socket.destroy();
      return;
    }
    const fromClient = this.perClient.get(address) ?? 0;
    if (fromClient >= this.maxPerClient) {
      this.log.warn(`NFS connection from ${address} refused: it has ${fromClient} connections open already`);
      socket.destroy();
      return;
    }
    this.perClient.set(address, fromClient + 1);
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      const left = (this.perClient.get(address) ?? 1) - 1;
      if (left > 0) this.perClient.set(address, left);
      else this.perClient.delete(address);
    });
    socket.on('error', () => socket.destroy());
    const parser = new RecordParser(this.maxRecord);
    const queue: Buffer[] = [];
    let inFlight = 0;

    const pump = () => {
      while (queue.length > 0 && inFlight < this.maxInFlight && !socket.destroyed) {
        const record = queue.shift() as Buffer;
        inFlight++;
        void this.serve(record, address, programs)
          .then((reply) => (reply ? send(reply) : undefined))
          .catch((err: unknown) => {
            this.log.warn(`NFS connection from ${address}: ${(err as Error).message}`);
            socket.destroy();
          })
          .finally(() => {
            inFlight--;
            pump();
          });
      }
      if (queue.length > 0 || inFlight >= this.maxInFlight) socket.pause();
      else if (socket.isPaused() && !socket.destroyed) socket.resume();
    };

    const send = (parts: Buffer[]) =>
      new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        const framed = frame(parts);
        socket.cork();
        for (let i = 0; i < framed.length - 1; i++) socket.write(framed[i] as Buffer);
        socket.write(framed[framed.length - 1] as Buffer, () => resolve());
        socket.uncork();
      });

    socket.on('data', (data: Buffer) => {
      try {
        queue.push(...parser.push(data));
      } catch (err) {
        this.log.warn(`NFS connection from ${address} closed: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      pump();
    });
  }

  /** The reply to one record, or null to send nothing. Throws to close the connection. */
  private async serve(record: Buffer, address: string, programs: Programs): Promise<Buffer[] | null> {
    let call: RpcCall;
    try {
      call = parseCall(record);
    } catch (err) {
      if (!(err instanceof RpcHeaderError)) throw err;
      if (!err.reply) throw err;
      this.log.info(`RPC from ${address} refused: ${err.message}`);
      return err.reply;
    }
    const { xid } = call;
    const version = (low: number, high: number) => (call.vers < low || call.vers > high ? progMismatch(xid, low, high) : null);
    let body: XdrWriter | null;
    try {
      if (call.prog === PORTMAP_PROGRAM) {
        const mismatch = version(PORTMAP_VERSION, PORTMAP_VERSION);
        if (mismatch) return mismatch;
        body = this.portmap.call(call);
      } else if (call.prog === NFS_PROGRAM && programs === 'all') {
        const mismatch = version(NFS_VERSION, NFS_VERSION);
        if (mismatch) return mismatch;
        body = await this.nfs.call(call, { address, writeVerifier: this.writeVerifier, warn: (m) => this.log.warn(m) });
      } else if (call.prog === MOUNT_PROGRAM && programs === 'all') {
        const mismatch = version(MOUNT_VERSION, MOUNT_VERSION);
        if (mismatch) return mismatch;
        body = await this.mount.call(call, { address, info: (m) => this.log.info(m) });
      } else {
        return simpleAccepted(xid, AcceptStat.PROG_UNAVAIL);
      }
    } catch (err) {
      if (err instanceof XdrError) return simpleAccepted(xid, AcceptStat.GARBAGE_ARGS);
      this.log.warn(`RPC program ${call.prog} procedure ${call.proc} from ${address} failed: ${(err as Error).message}`);
      return simpleAccepted(xid, AcceptStat.SYSTEM_ERR);
    }
    if (!body) return simpleAccepted(xid, AcceptStat.PROC_UNAVAIL);
    return [...acceptedReply(xid, AcceptStat.SUCCESS).parts(), ...body.parts()];
  }
}
