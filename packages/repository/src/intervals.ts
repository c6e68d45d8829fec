/** Sorted, merged [start,end) interval lists (flat number arrays of pairs), as the disk writer tracks chunk coverage. */

export function addInterval(iv: number[], s: number, e: number): void {
  const out: number[] = [];
  let placed = false;
  for (let i = 0; i < iv.length; i += 2) {
    const a = iv[i]!;
    const b = iv[i + 1]!;
    if (b < s) out.push(a, b);
    else if (a > e) {
      if (!placed) {
        out.push(s, e);
        placed = true;
      }
      out.push(a, b);
    } else {
      s = Math.min(s, a);
      e = Math.max(e, b);
    }
  }
  if (!placed) out.push(s, e);
  iv.length = 0;
  iv.push(...out);
}

export function gapsOf(iv: number[], len: number): number[] {
  const gaps: number[] = [];
  let pos = 0;
  for (let i = 0; i < iv.length; i += 2) {
    if (iv[i]! > pos) gaps.push(pos, iv[i]!);
    pos = iv[i + 1]!;
  }
  if (pos < len) gaps.push(pos, len);
  return gaps;
}

/** Intersection of two sorted [start,end) pair lists. */
export function intersect(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const s = Math.max(a[i]!, b[j]!);
    const e = Math.min(a[i + 1]!, b[j + 1]!);
    if (s < e) out.push(s, e);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}
