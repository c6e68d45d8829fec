/**
 * The VMs of each vCenter, kept for a while, so a page that is read often (the overview, every few seconds
 * on an operator's screen) does not walk every vCenter's inventory on every call.
 *
 *  - A copy younger than `maxAgeMs` is answered as is.
 *  - An older one is refreshed, but the caller waits at most `staleWaitMs`: a vCenter that is slow or down
 *    is answered with the copy it last gave, dated, while the refresh goes on (and updates the copy when
 *    it ends). Without any copy the caller waits up to `firstWaitMs`.
 *  - One read per vCenter at a time: callers that arrive during a read share it (except those asking for the
 *    present, whose read must start after they asked).
 *
 * Copies are keyed by what reaches the vCenter (URL, user, a hash of the password, pinned thumbprint), so a
 * changed connection never answers from the old one. Pages that need the present (a job's sources checked
 * at creation, the wizard's VM list) read with `maxAgeMs: 0`, which also renews the copy.
 */
import { createHash } from 'node:crypto';
import type { InventoryContainer, InventoryVm } from '@vaultline/contracts';
import type { VCenterConnection, VCenterConnector } from './vcenter-connector.ts';

export interface InventoryAnswer {
  vms: InventoryVm[];
  /** The datacenters, clusters, hosts and VM folders of the same read (each VM names those holding it). */
  containers: InventoryContainer[];
  /** Why the containers hold no tags (the vCenter's tagging service could not be read), when so. */
  tagsError?: string | undefined;
  /** When the vCenter gave this list. */
  at: Date;
  /** Set when the list is an older copy because the vCenter did not answer in time: what went wrong. */
  problem: string | null;
}

export interface InventoryCacheOptions {
  maxAgeMs: number;
  staleWaitMs: number;
  firstWaitMs: number;
  now?: () => number;
}

export const INVENTORY_CACHE_DEFAULTS: InventoryCacheOptions = { maxAgeMs: 60_000, staleWaitMs: 3_000, firstWaitMs: 15_000 };

interface Entry {
  vms: InventoryVm[];
  containers: InventoryContainer[];
  tagsError?: string | undefined;
  at: number;
}

const answer = (e: Entry, problem: string | null): InventoryAnswer => ({ vms: e.vms, containers: e.containers, ...(e.tagsError ? { tagsError: e.tagsError } : {}), at: new Date(e.at), problem });

const keyOf = (c: VCenterConnection) => createHash('sha256').update(JSON.stringify([c.url, c.username, c.password, c.thumbprintSha256, c.allowHttp])).digest('hex');

/** Resolves with `p`, or rejects after `ms` saying what did not answer (p goes on). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class InventoryCache {
  private readonly copies = new Map<string, Entry>();
  private readonly reading = new Map<string, Promise<Entry>>();
  private readonly opts: Required<InventoryCacheOptions>;

  constructor(
    private readonly connector: VCenterConnector,
    opts: Partial<InventoryCacheOptions> = {},
  ) {
    this.opts = { now: Date.now, ...INVENTORY_CACHE_DEFAULTS, ...opts };
  }

  /** The VMs and containers of the vCenter `conn` (named `what` in errors), at most `maxAgeMs` old when it answers in time. */
  async listVms(conn: VCenterConnection, what: string, opts: { maxAgeMs?: number } = {}): Promise<InventoryAnswer> {
    const key = keyOf(conn);
    const copy = this.copies.get(key);
    const now = this.opts.now();
    if (copy && now - copy.at < (opts.maxAgeMs ?? this.opts.maxAgeMs)) return answer(copy, null);
    // A page that asked for the present waits for a read of its own, like a direct read.
    if (opts.maxAgeMs === 0) {
      const e = await this.readNow(key, conn);
      return answer(e, null);
    }
    const read = this.read(key, conn);
    if (!copy) {
      const e = await within(read, this.opts.firstWaitMs, what);
      return answer(e, null);
    }
    try {
      const e = await within(read, this.opts.staleWaitMs, what);
      return answer(e, null);
    } catch (err) {
      return answer(copy, (err as Error).message);
    }
  }

  /** A read of the vCenter started now; its answer becomes the copy unless a read started later already did. */
  private async readNow(key: string, conn: VCenterConnection): Promise<Entry> {
    const started = this.opts.now();
    const { vms, containers, tagsError } = await this.connector.inventory(conn);
    const e: Entry = { vms, containers, ...(tagsError ? { tagsError } : {}), at: started };
    if ((this.copies.get(key)?.at ?? -Infinity) <= started) this.copies.set(key, e);
    return e;
  }

  private read(key: string, conn: VCenterConnection): Promise<Entry> {
    const running = this.reading.get(key);
    if (running) return running;
    const p = this.readNow(key, conn).finally(() => this.reading.delete(key));
    // A refresh nobody waits for any more must not become an unhandled rejection.
    p.catch(() => undefined);
    this.reading.set(key, p);
    return p;
  }
}
