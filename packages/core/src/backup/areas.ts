import type { Area } from './ports.ts';

/** Sorts, clips to [0, capacity) and merges touching areas. */
export function normaliseAreas(areas: Area[], capacity: number): Area[] {
  const sorted = areas
    .map((a) => ({ start: Math.max(0, a.start), end: Math.min(capacity, a.start + a.length) }))
    .filter((a) => a.end > a.start)
    .sort((a, b) => a.start - b.start);
  const out: Area[] = [];
  for (const a of sorted) {
    const last = out.at(-1);
    if (last && a.start <= last.start + last.length) {
      last.length = Math.max(last.length, a.end - last.start);
    } else {
      out.push({ start: a.start, length: a.end - a.start });
    }
  }
  return out;
}

/** Cuts areas into reads of at most `max` bytes. */
export function* pieces(areas: Area[], max: number): Generator<Area> {
  for (const a of areas) {
    for (let off = a.start; off < a.start + a.length; off += max) {
      yield { start: off, length: Math.min(max, a.start + a.length - off) };
    }
  }
}

export const totalLength = (areas: Area[]) => areas.reduce((n, a) => n + a.length, 0);

/** The areas of [0, capacity) not covered by `areas` (which must be normalised). */
export function complement(areas: Area[], capacity: number): Area[] {
  const out: Area[] = [];
  let pos = 0;
  for (const a of areas) {
    if (a.start > pos) out.push({ start: pos, length: a.start - pos });
    pos = a.start + a.length;
  }
  if (pos < capacity) out.push({ start: pos, length: capacity - pos });
  return out;
}

/**
 * Picks `count` blocks of `block` bytes at seeded-random positions inside
 * `areas`, for CBT sanity sampling. Deterministic for a seed, so a run log
 * can name exactly what was checked.
 */
export function sampleBlocks(areas: Area[], block: number, count: number, seed: number): Area[] {
  const slots: Area[] = [];
  for (const a of areas) {
    const first = Math.ceil(a.start / block) * block;
    for (let off = first; off + block <= a.start + a.length; off += block) {
      slots.push({ start: off, length: block });
      if (slots.length > 1_000_000) break;
    }
  }
  let x = seed >>> 0 || 1;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  const picked: Area[] = [];
  for (let i = 0; i < count && slots.length > 0; i++) {
    const j = Math.floor(rand() * slots.length);
    picked.push(slots[j]!);
    slots[j] = slots[slots.length - 1]!;
    slots.pop();
  }
  return picked.sort((a, b) => a.start - b.start);
}
