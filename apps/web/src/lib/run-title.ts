import type { Run } from '@vaultline/contracts';

export const RUN_KIND: Record<Run['kind'], string> = { backup: 'Backup', restore: 'Restore', verify: 'Verify', drill: 'Restore drill', gc: 'Garbage collection', copy: 'Backup copy' };

/** What a run is, in words: the job's name for backups (a one-off backup names its VM), else its kind and what it acts on. */
export function runTitle(run: Pick<Run, 'kind' | 'vms' | 'trigger'>, jobName: string | undefined): string {
  const what = run.vms.map((v) => v.vmName).join(', ');
  switch (run.kind) {
    case 'backup':
      return jobName ?? (run.trigger === 'one-off' ? `One-off backup of ${what}` : 'Backup');
    case 'restore':
      return what ? `Restore to ${what}` : 'Restore';
    case 'drill':
      return what ? `Restore drill ${what}` : 'Restore drill';
    case 'verify':
      return what ? `Verify of ${what}` : 'Verify';
    case 'gc':
      return what ? `Garbage collection of ${what}` : 'Garbage collection';
    case 'copy':
      return what ? `Backup copy ${what}` : 'Backup copy';
  }
}

/** Restores and drills write disks (from the repository); backups read them (into it). */
export const writesDisks = (kind: Run['kind']) => kind === 'restore' || kind === 'drill';
