/**
 * Pack writer: chunk blobs are appended to pack files written under a tmp name;
 * a pack is fsynced and renamed into place when full (in the libuv pool, so the
 * pipeline keeps running: durable writes are batched per ~32 MiB pack).
 */
import * as crypto from 'node:crypto';
import type { Backend, FileWriter } from './backends/backend.ts';
import { encodePackFooter, packPath } from './format.ts';
import type { BlobLocation, PackEntry } from './format.ts';

export class PackWriter {
  private fw: FileWriter | null = null;
  private packId = '';
  private entries: PackEntry[] = [];
  private readonly commits: Promise<void>[] = [];
  private readonly writers: FileWriter[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  readonly written: string[] = [];
  constructor(
    private readonly backend: Backend,
    private readonly target: number,
  ) {}

  /** Serialised append; resolves once the data has been handed to the backend. */
  append(id: Buffer, data: Buffer, rawLen: number): Promise<BlobLocation> {
    const run = async (): Promise<BlobLocation> => {
      if (!this.fw) {
        this.packId = crypto.randomBytes(16).toString('hex');
        this.fw = await this.backend.openWriter(packPath(this.packId));
        this.entries = [];
      }
      // A blob in a worker's shared slot is copied fastest when it lands at the same
      // offset mod 8 as it sits (V8 copies out of shared memory word by word only
      // when both sides are aligned alike: ~3 GiB/s byte-wise against 8-16), so up
      // to 7 zero bytes may precede it; entries name their offsets.
      const pad = data.buffer instanceof SharedArrayBuffer ? (((data.byteOffset - this.fw.size) % 8) + 8) % 8 : 0;
      const offset = this.fw.size + pad;
      await this.fw.write(data, pad);
      this.entries.push({ id, offset, storedLen: data.length, rawLen });
      const loc = { pack: this.packId, offset, storedLen: data.length, rawLen };
      if (this.fw.size >= this.target) await this.rotate();
      return loc;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async rotate(): Promise<void> {
    const fw = this.fw;
    if (!fw) return;
    this.fw = null;
    await fw.write(encodePackFooter(this.entries));
    this.written.push(this.packId);
    this.writers.push(fw);
    const c = fw.commit();
    c.catch(() => undefined);
    this.commits.push(c);
  }

  async finish(): Promise<void> {
    await this.chain;
    await this.rotate();
    await Promise.all(this.commits);
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    if (this.fw) await this.fw.abort();
    this.fw = null;
    await Promise.allSettled(this.commits);
    // Failed commits leave their tmp file: abort() removes it (a no-op after a successful commit).
    for (const w of this.writers) await w.abort();
    for (const p of this.written) await this.backend.remove(packPath(p)).catch(() => undefined);
  }
}
