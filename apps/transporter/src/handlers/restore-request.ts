/**
 * A restore request (as the Director stored it on the run) turned into what the engine takes, and the run
 * log lines that say what is being restored and what came of it.
 */
import { RestoreRequestSchema, transportLabel, type KvmRestoreTarget, type RestoreRequest } from '@vaultline/contracts';
import type { RestoreVmInput, RestoreVmResult } from '@vaultline/core';

export interface PointRow {
  vmName: string;
  repoPointId: string;
}

/** The run's request, or why it cannot be carried out. */
export function readRestoreRequest(stored: unknown): { request: RestoreRequest & { vcenterId: string } } | { kvm: RestoreRequest & { kvm: KvmRestoreTarget } } | { problem: string } {
  const parsed = RestoreRequestSchema.safeParse(stored);
  if (!parsed.success) return { problem: `the restore request is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` };
  if (parsed.data.kvm) return { kvm: { ...parsed.data, kvm: parsed.data.kvm } };
  const { vcenterId } = parsed.data;
  if (!vcenterId) return { problem: 'the restore request is not valid: no target vCenter' };
  return { request: { ...parsed.data, vcenterId } };
}

/** The engine's input for a whole-VM restore (new VM, drill or replace). */
export function restoreVmInput(request: RestoreRequest, base: Pick<RestoreVmInput, 'repo' | 'ref' | 'restoreId' | 'vcenterId' | 'runId' | 'runVmId'>): RestoreVmInput {
  return {
    ...base,
    name: request.name,
    powerOn: request.powerOn,
    transport: request.transport,
    failoverToNetwork: request.failoverToNetwork,
    drill: request.drill,
    ...(request.replace ? { replace: request.replace } : {}),
    placement: { host: request.host, folder: request.folder, resourcePool: request.resourcePool, datastore: request.datastore, networkMap: request.networkMap },
  };
}

export function restoreVmStarting(request: RestoreRequest, point: PointRow): string {
  const what = request.drill ? 'drill: restoring' : request.replace ? 'replacing' : 'restoring';
  return `${what} ${request.replace ? `${request.name} with ` : ''}${point.vmName} from restore point ${point.repoPointId}${request.replace ? '' : ` as ${request.name}`} (transport ${transportLabel(request.transport)})`;
}

export function restoreVmDone(request: RestoreRequest, result: RestoreVmResult): string[] {
  const lines = result.disks.map((d) => `disk ${d.key} written to ${d.fileName} over ${transportLabel(d.transport)}, SHA-256 ${d.sha256} verified`);
  if (result.replaced) lines.push(`replaced: ${request.name} is the restored VM; the original is kept as ${result.replaced.renamedTo}, powered off`);
  return lines;
}
