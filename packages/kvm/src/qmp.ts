/**
 * A QMP client (QEMU Machine Protocol: JSON lines on a unix socket). One
 * command is in flight at a time, as QMP answers in order and a reply carries
 * no command name. Events are kept from the moment of connecting, so an event
 * that arrives before anyone waits for it (BLOCK_JOB_READY of a small disk
 * comes fast) is not lost: `waitForEvent` looks at what came since a mark.
 */
import net from 'node:net';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** QEMU refused a command: its error class (GenericError, DeviceNotFound, …) and description. */
export class QmpError extends Error {
  override name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class QmpClient {
  /** Every event received since connecting, oldest first. */
  readonly events: QmpEvent[] = [];
  private buffer = '';
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: Error | null = null;
  private readonly eventWaiters = new Set<() => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    const closed = (err?: Error) => {
      this.closedError ??= new Error(`QMP connection closed${err ? `: ${err.message}` : ''}`);
      this.pending?.reject(this.closedError);
      this.pending = null;
      for (const wake of this.eventWaiters) wake();
    };
    socket.on('error', closed);
    socket.on('close', () => closed());
  }

  /**
   * Connects to QEMU's QMP socket, retrying until it exists and answers (QEMU
   * creates it a moment after starting), and leaves capabilities negotiation
   * done. `alive` stops the retrying early when QEMU has already exited.
   */
  static async connect(socketPath: string, opts: { timeoutMs?: number; alive?: () => boolean } = {}): Promise<QmpClient> {
    const end = Date.now() + (opts.timeoutMs ?? 30_000);
    let last: Error | null = null;
    for (;;) {
      if (opts.alive && !opts.alive()) throw new Error(`QEMU exited before its QMP socket ${socketPath} answered${last ? ` (${last.message})` : ''}`);
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(socketPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const client = new QmpClient(socket);
        await client.greeting(Math.max(1000, end - Date.now()));
        await client.execute('qmp_capabilities');
        return client;
      } catch (err) {
        last = err as Error;
        if (Date.now() > end) throw new Error(`no QMP on ${socketPath} within ${opts.timeoutMs ?? 30_000} ms: ${last.message}`);
        await sleep(100);
      }
    }
  }

  private greetingResolve: (() => void) | null = null;

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error('QEMU sent no QMP greeting'));
      }, timeoutMs);
      this.greetingResolve = () => {
        clearTimeout(timer);
        resolve();
      };
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('QMP socket closed before the greeting'));
      });
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('QMP' in msg) {
        this.greetingResolve?.();
        this.greetingResolve = null;
      } else if ('event' in msg) {
        this.events.push({ event: String(msg.event), data: (msg.data ?? {}) as Record<string, unknown>, timestamp: msg.timestamp as QmpEvent['timestamp'] });
        for (const wake of this.eventWaiters) wake();
      } else if (this.pending) {
        const p = this.pending;
        this.pending = null;
        if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string };
          p.reject(new QmpError(p.command, e.class ?? 'Error', e.desc ?? 'unknown error'));
        } else p.resolve(msg.return);
      }
    }
  }

  /** Runs one QMP command and returns its `return` value; rejects with a QmpError when QEMU refuses it. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const run = () =>
      new Promise<T>((resolve, reject) => {
        if (this.closedError) return reject(this.closedError);
        this.pending = { command, resolve: resolve as (v: unknown) => void, reject };
        this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
      });
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** A mark to pass to `waitForEvent`: only events after it count. */
  mark(): number {
    return this.events.length;
  }

  /**
   * Waits for an event named `name` (or any of the names; and matching
   * `match`) received after `since`; rejects after `timeoutMs` or when the
   * connection closes (QEMU exited).
   */
  waitForEvent(name: string | string[], opts: { since?: number; timeoutMs: number; match?: (e: QmpEvent) => boolean }): Promise<QmpEvent> {
    const since = opts.since ?? 0;
    const names = Array.isArray(name) ? name : [name];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.eventWaiters.delete(check);
        reject(new Error(`no QMP event ${names.join(' or ')} within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      const check = () => {
        const hit = this.events.slice(since).find((e) => names.includes(e.event) && (!opts.match || opts.match(e)));
        if (hit || this.closedError) {
          this.eventWaiters.delete(check);
          clearTimeout(timer);
          if (hit) resolve(hit);
          else reject(new Error(`waiting for QMP event ${names.join(' or ')}: ${this.closedError!.message}`));
        }
      };
      this.eventWaiters.add(check);
      check();
    });
  }

  /** True once the socket closed (QEMU quit or was killed). */
  get closed(): boolean {
    return this.closedError !== null;
  }

  close(): void {
    this.socket.destroy();
  }
}
