/**
 * Read-ahead for sequential random-access reads: a reader reading in order is
 * served from the parallel restore pipeline (`forEachExtent`) instead of
 * chunk by chunk.
 */
import type { ExtentSource } from './types.ts';

export class StreamCancelled extends Error {}

/**
 * Sequential reads served from the `forEachExtent` pipeline: stages arrive in
 * offset order, `read()` copies out of the current one (zeros for holes
 * between stages) and releases it once passed, which lets the pipeline reuse
 * the stage buffer. An idle stream (no read for IDLE_MS) cancels itself so an
 * abandoned reader never pins the worker pool.
 */
export class SequentialStream {
  static readonly IDLE_MS = 5000;
  pos: number;
  private stages: Array<{ offset: number; data: Buffer; release: () => void }> = [];
  private waiter: (() => void) | null = null;
  private done = false;
  private error: unknown = null;
  private cancelled = false;
  private idle: NodeJS.Timeout | null = null;
  private readonly run: Promise<void>;

  constructor(
    private readonly reader: ExtentSource,
    offset: number,
  ) {
    this.pos = offset;
    this.run = reader
      .forEachExtent(
        (off, data) =>
          new Promise<void>((resolve, reject) => {
            if (this.cancelled) return reject(new StreamCancelled());
            this.stages.push({ offset: off, data, release: resolve });
            this.cancelStage = reject;
            this.wake();
          }),
        4 * 1024 * 1024,
        Math.floor(offset / reader.chunkSize),
      )
      .then(
        () => {
          this.done = true;
          this.wake();
        },
        (err: unknown) => {
          if (!(err instanceof StreamCancelled)) this.error = err;
          this.done = true;
          this.wake();
        },
      );
    this.armIdle();
  }
  private cancelStage: ((e: unknown) => void) | null = null;

  get isCancelled(): boolean {
    return this.cancelled;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private armIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.cancel(), SequentialStream.IDLE_MS);
    this.idle.unref();
  }

  cancel(): void {
    if (this.idle) clearTimeout(this.idle);
    if (this.cancelled) return;
    this.cancelled = true;
    for (const s of this.stages) s.release();
    this.stages = [];
    this.cancelStage?.(new StreamCancelled());
    this.wake(); // a read waiting for a stage learns it was cancelled
    void this.run;
  }

  async read(offset: number, out: Buffer): Promise<Buffer> {
    if (this.cancelled) throw new StreamCancelled('sequential stream cancelled');
    this.armIdle();
    const end = offset + out.length;
    let pos = offset;
    while (pos < end) {
      let s = this.stages[0];
      while (s && s.offset + s.data.length <= pos) {
        this.stages.shift();
        s.release();
        s = this.stages[0];
      }
      if (!s) {
        if (this.error) throw this.error;
        if (this.done) {
          out.fill(0, pos - offset); // holes up to the end
          break;
        }
        await new Promise<void>((resolve) => (this.waiter = resolve));
        // Cancelled while waiting: the stages are gone, so what follows is not known to be holes.
        if (this.cancelled) throw new StreamCancelled('sequential stream cancelled');
        continue;
      }
      if (pos < s.offset) {
        const n = Math.min(s.offset, end) - pos; // a hole before the next stage
        out.fill(0, pos - offset, pos - offset + n);
        pos += n;
        continue;
      }
      const n = Math.min(s.offset + s.data.length, end) - pos;
      s.data.copy(out, pos - offset, pos - s.offset, pos - s.offset + n);
      pos += n;
    }
    this.pos = end;
    return out;
  }
}
