import { describeSource, isContainerSource, type JobSource } from '@vaultline/contracts';

/** A job source as lists show it: a VM by its name, a container by its kind and path ("folder DC0/vm/Apps"). */
export const sourceLabel = (s: JobSource): string => (isContainerSource(s) ? describeSource(s) : s.name);

/** "2 VMs", "1 folder", "3 VMs and 1 host": what a job's sources are. */
export function sourceCount(sources: readonly JobSource[]): string {
  const counts = new Map<string, number>();
  for (const s of sources) {
    const kind = isContainerSource(s) ? s.kind : 'VM';
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  const parts = [...counts].map(([kind, n]) => `${n} ${kind}${n === 1 ? '' : 's'}`);
  return parts.length <= 1 ? (parts[0] ?? '0 VMs') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]!}`;
}
