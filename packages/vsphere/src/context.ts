/** What every domain module needs: the transport, ServiceContent and helpers. */
import { readObject, retrieveProperties, type ObjectContent, type PropertyQuery } from './property.ts';
import type { SoapClient } from './soap/client.ts';
import type { MoRef } from './soap/xml.ts';
import type { Tasks } from './tasks.ts';
import type { ServiceContent } from './types.ts';

export interface Ctx {
  soap: SoapClient;
  sc: () => ServiceContent;
  tasks: Tasks;
}

export function props(ctx: Ctx, q: PropertyQuery, context?: string): Promise<ObjectContent[]> {
  return retrieveProperties(ctx.soap, ctx.sc().propertyCollector, q, context);
}

export function read(ctx: Ctx, obj: MoRef, paths: string[]): Promise<ObjectContent> {
  return readObject(ctx.soap, ctx.sc().propertyCollector, obj, paths);
}

export const vmRef = (v: string): MoRef => ({ type: 'VirtualMachine', value: v });
export const snapRef = (v: string): MoRef => ({ type: 'VirtualMachineSnapshot', value: v });

/** Serialises async work per key (e.g. one ReconfigVM at a time per VM). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.tails.set(key, next);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === next) this.tails.delete(key);
    }
  }
}
