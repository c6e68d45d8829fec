import { JobOptionsSchema, type Job, type JobOptions, type JobSource, type TransportMode } from '@vaultline/contracts';
import { fromCron, type ScheduleChoice } from '../schedule.ts';

/** A VM, or a datacenter, cluster, host or VM folder (whose VMs each run reads again). */
export type Source = JobSource;

export interface WizardState {
  name: string;
  enabled: boolean;
  vcenterId: string;
  sources: Source[];
  repositoryId: string;
  schedule: ScheduleChoice;
  transportMode: TransportMode;
  options: JobOptions;
}

export const STEPS = ['Sources', 'Destination', 'Schedule', 'Options', 'Review'] as const;
export type Step = (typeof STEPS)[number];

export function emptyState(): WizardState {
  return { name: '', enabled: true, vcenterId: '', sources: [], repositoryId: '', schedule: { kind: 'none' }, transportMode: 'automatic', options: JobOptionsSchema.parse({}) };
}

export function stateFromJob(job: Job): WizardState {
  return {
    name: job.name,
    enabled: job.enabled,
    vcenterId: job.vcenterId,
    sources: job.sources,
    repositoryId: job.repositoryId,
    schedule: fromCron(job.schedule),
    transportMode: job.transportMode,
    options: job.options,
  };
}

/** Same VM: by instance UUID when both have one, else by moref. */
export function sameVm(a: { moref: string; instanceUuid?: string | undefined }, b: { moref: string; instanceUuid?: string | undefined }): boolean {
  if (a.instanceUuid && b.instanceUuid) return a.instanceUuid === b.instanceUuid;
  return a.moref === b.moref;
}

export function suggestName(sources: Source[]): string {
  if (sources.length === 0) return '';
  const names = sources.map((s) => s.name);
  return `Backup – ${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}`;
}
