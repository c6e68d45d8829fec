/**
 * The `restore.run-vm` job: a full VM restore asked for through the Director.
 * The request lives on the run row; the outcome (new VM, per-disk SHA-256) goes
 * to the run item's log, like a backup's.
 */
import { randomUUID } from 'node:crypto';
import { openRepository } from '@vaultline/appliance';
import { openSecret } from '@vaultline/config';
import { SECRET_LABELS } from '@vaultline/appliance';
import { RestoreRequestSchema, type BackupVmJob } from '@vaultline/contracts';
import type { Db } from '@vaultline/db';
import type { Logger } from '@vaultline/logger';
import { PermanentError } from '@vaultline/queue';
import { VSphereClient } from '@vaultline/vsphere';
import { z } from 'zod';
import type { CleanupJournal } from '../backup/journal.ts';
import { restoreDisk, restoreVm } from '../restore/restore-vm.ts';

export function createRestoreVmHandler(deps: { db: Db; secretKey: Buffer; transporterId: string; journal: CleanupJournal; log: Logger; publish(e: { type: string; [k: string]: unknown }): void }) {
  const { db } = deps;
  return async function handleRestore(payload: BackupVmJob): Promise<void> {
    const item = await db.runVm.findUnique({ where: { id: payload.runVmId }, include: { run: true } });
    if (!item) throw new PermanentError(`run item ${payload.runVmId} does not exist`);
    if (['succeeded', 'warning', 'failed', 'cancelled'].includes(item.status)) return;
    const log = async (level: string, message: string) => {
      deps.log[level === 'error' ? 'error' : 'info']({ runVmId: item.id }, message);
      const entry = JSON.stringify([{ at: new Date().toISOString(), level, message }]);
      await db.$executeRaw`UPDATE run_vms SET log = log || ${entry}::jsonb WHERE id = ${item.id}::uuid`;
      deps.publish({ type: 'run.log', runId: item.runId, runVmId: item.id, level, message });
    };
    const finish = async (status: 'succeeded' | 'failed', error: string | null, vmMoref?: string) => {
      await db.runVm.update({ where: { id: item.id }, data: { status, error, phase: status, finishedAt: new Date(), ...(vmMoref ? { vmMoref } : {}) } });
      await db.jobRun.update({ where: { id: item.runId }, data: { status, error, finishedAt: new Date() } });
      deps.publish({ type: 'run.finished', runId: item.runId, status });
    };
    await db.jobRun.update({ where: { id: item.runId }, data: { status: 'running', startedAt: new Date() } });
    await db.runVm.update({ where: { id: item.id }, data: { status: 'running', phase: 'restoring', transporterId: deps.transporterId, startedAt: new Date() } });
    const request = RestoreRequestSchema.extend({ vcenterId: z.uuid() }).parse(item.run.request);
    const restoreId = randomUUID();
    let client: VSphereClient | null = null;
    let repo: Awaited<ReturnType<typeof openRepository>> | null = null;
    try {
      const point = await db.restorePoint.findUniqueOrThrow({ where: { id: request.restorePointId }, include: { repository: true } });
      const vc = await db.vCenter.findUniqueOrThrow({ where: { id: request.vcenterId } });
      repo = await openRepository(point.repository, deps.secretKey);
      client = await VSphereClient.connect({
        url: vc.url,
        username: vc.username,
        password: openSecret(deps.secretKey, SECRET_LABELS.vcenterPassword, vc.passwordSealed),
        ...(vc.thumbprintSha256 ? { thumbprintSha256: vc.thumbprintSha256 } : {}),
        allowHttp: vc.url.startsWith('http:'),
      });
      if (request.disk) {
        await log('info', `restoring disk ${request.disk.key} of ${point.vmName} (restore point ${point.repoPointId}) as a new disk of ${request.disk.targetVm}`);
        const d = await restoreDisk({ repo, ref: { vmId: point.vmInstanceUuid, id: point.repoPointId }, diskKey: request.disk.key, targetVm: request.disk.targetVm }, { client, log: deps.log });
        await log('info', `disk written to ${d.fileName}, SHA-256 ${d.sha256} verified`);
        await finish('succeeded', null, request.disk.targetVm);
        return;
      }
      await log('info', `${request.drill ? 'drill: ' : ''}restoring ${point.vmName} from restore point ${point.repoPointId} as ${request.name}`);
      const result = await restoreVm(
        {
          repo,
          ref: { vmId: point.vmInstanceUuid, id: point.repoPointId },
          name: request.name,
          restoreId,
          powerOn: request.powerOn,
          vcenterId: vc.id,
          ...(request.datastore ? { placement: { datastore: request.datastore } } : {}),
        },
        { client, journal: deps.journal, log: deps.log, progress: (m) => void log('info', m) },
      );
      for (const d of result.disks) await log('info', `disk ${d.key} written to ${d.fileName}, SHA-256 ${d.sha256} verified`);
      if (request.drill) {
        // A drill proves the restore point restores; the throwaway VM goes again.
        await client.vms.destroyRestored(result.vmMoref, restoreId);
        await log('info', `drill passed: ${request.name} restored, verified and deleted`);
      }
      await finish('succeeded', null, result.vmMoref);
    } catch (err) {
      const message = (err as Error).message;
      await log('error', message);
      await finish('failed', message);
    } finally {
      await client?.close().catch(() => undefined);
      await repo?.close().catch(() => undefined);
    }
  };
}
