/**
 * Full VM restore to a new VM, over the network (datastore PUT of each disk's
 * flat extent), verified bit-exact by reading every disk back.
 *
 * Safety:
 * - an existing VM is never touched: a name in use is refused before anything
 *   is created;
 * - the new VM carries a restore marker, and a journal row is written BEFORE it
 *   is created; on any failure (or a crash, through the sweep) only a VM with
 *   that marker can be destroyed, so a source VM can never be;
 * - the restore succeeds only when each written disk's SHA-256, read back from
 *   the datastore, equals the restore point's.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from '@vaultline/logger';
import { DiskReader, type Manifest, type Repository, type RestorePointRef } from '@vaultline/repository';
import { createSpecFromHardware, flatExtentPath, parseDatastorePath, type HardwareDescription, type VSphereClient } from '@vaultline/vsphere';
import type { CleanupJournal } from '../backup/journal.ts';

const STEP = 4 * 1024 * 1024;

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export interface RestoreVmInput {
  repo: Repository;
  ref: RestorePointRef;
  /** Name of the new VM (must not exist). */
  name: string;
  /** Unique id of this restore, stored in the new VM as its marker. */
  restoreId: string;
  /** Where to put it; defaults are the source VM's folder, pool, host and first datastore. */
  placement?: { folder?: string; resourcePool?: string; host?: string; datastore?: string };
  powerOn?: boolean;
  vcenterId?: string;
}

export interface RestoredDisk {
  key: string;
  fileName: string;
  capacityBytes: number;
  sha256: string;
}

export interface RestoreVmResult {
  vmMoref: string;
  disks: RestoredDisk[];
}

async function sha256Of(reader: { read(o: number, l: number): Promise<Buffer> }, capacity: number): Promise<string> {
  const h = createHash('sha256');
  for (let off = 0; off < capacity; off += STEP) h.update(await reader.read(off, Math.min(STEP, capacity - off)));
  return h.digest('hex');
}

export async function restoreVm(input: RestoreVmInput, deps: { client: VSphereClient; journal: CleanupJournal; log: Logger; progress?: (m: string) => void }): Promise<RestoreVmResult> {
  const { client, journal } = deps;
  const say = deps.progress ?? (() => undefined);
  const manifest: Manifest = await input.repo.readManifest(input.ref);
  const meta = (manifest.vm ?? {}) as { moref?: string; name?: string; hardware?: HardwareDescription | null };
  if (!meta.hardware) throw new RestoreError(`restore point ${manifest.id} holds no hardware description; restore its disks instead`);
  const hw = meta.hardware;

  const vms = await client.inventory.vms();
  if (vms.some((v) => v.name === input.name)) throw new RestoreError(`a VM named ${input.name} already exists; choose another name (Vaultline never overwrites a VM)`);

  // Placement: the operator's, else the source VM's.
  const source = meta.moref ? vms.find((v) => v.moref === meta.moref) : undefined;
  const from = source ? await client.vms.placement(source.moref) : {};
  const folder = input.placement?.folder ?? from.folder;
  const resourcePool = input.placement?.resourcePool ?? from.resourcePool;
  const datastore = input.placement?.datastore ?? (hw.disks[0] ? parseDatastorePath(hw.disks[0].fileName).datastore : source?.datastores[0]);
  if (!folder || !resourcePool || !datastore) throw new RestoreError('the source VM is gone: choose a folder, resource pool and datastore for the restored VM');

  // Room on the target datastore for the disks.
  const inv = await client.inventory.all();
  const ds = inv.datastores.find((d) => d.name === datastore);
  if (!ds) throw new RestoreError(`datastore ${datastore} does not exist`);
  const needed = manifest.disks.reduce((n, d) => n + d.capacity, 0);
  if (ds.freeBytes >= 0 && ds.freeBytes < needed) {
    throw new RestoreError(`datastore ${datastore} has ${Math.floor(ds.freeBytes / 2 ** 20)} MiB free; the disks need ${Math.ceil(needed / 2 ** 20)} MiB`);
  }

  const jid = await journal.add('restore_vm', { restoreId: input.restoreId, name: input.name, vm: null }, input.vcenterId ? { vcenterId: input.vcenterId } : {});
  let vmMoref: string | null = null;
  try {
    const spec = createSpecFromHardware(hw, { name: input.name, restoreId: input.restoreId, folder, resourcePool, host: input.placement?.host ?? from.host, datastore });
    vmMoref = await client.vms.create(spec);
    await journal.update(jid, { restoreId: input.restoreId, name: input.name, vm: vmMoref });
    say(`created VM ${input.name} (${vmMoref})`);

    // The new VM's disks are created in the order of the hardware description.
    const created = (await client.inventory.vm(vmMoref)).disks;
    const disks: RestoredDisk[] = [];
    for (let i = 0; i < hw.disks.length; i++) {
      const src = hw.disks[i]!;
      const target = created[i];
      const key = String(src.key);
      const md = manifest.disks.find((d) => d.key === key);
      if (!md) throw new RestoreError(`restore point ${manifest.id} has no data for disk ${src.label ?? key}`);
      if (!target) throw new RestoreError(`the new VM has no disk for ${src.label ?? key}`);
      const { datastore: dsName, path } = parseDatastorePath(target.fileName);
      const dc = inv.datastores.find((d) => d.name === dsName)?.datacenter;
      if (!dc) throw new RestoreError(`datastore ${dsName} of the new disk is not in the inventory`);
      const file = { datacenter: dc, datastore: dsName, path: flatExtentPath(path) };

      const reader = await DiskReader.open(input.repo, input.ref, key);
      const expected = createHash('sha256');
      let readError: Error | null = null;
      async function* body(): AsyncGenerator<Buffer> {
        for (let off = 0; off < md!.capacity; off += STEP) {
          let chunk: Buffer;
          try {
            chunk = await reader.read(off, Math.min(STEP, md!.capacity - off));
          } catch (err) {
            readError = err as Error;
            throw err;
          }
          expected.update(chunk);
          yield chunk;
        }
      }
      say(`writing ${src.label ?? key} (${md.capacity} bytes) over the network`);
      try {
        await client.files.put(file, Readable.from(body()), { size: md.capacity });
      } catch (err) {
        // A failure of the repository read surfaces as a failed upload: name the real cause.
        if (readError) throw new RestoreError(`restore point ${manifest.id} is damaged: ${(readError as Error).message}; run a repository verify`);
        throw err;
      }
      const want = expected.digest('hex');
      // Verify: read what the datastore now holds.
      const got = await sha256Of({ read: (o, l) => client.files.readRange(file, o, l) }, md.capacity);
      if (got !== want) throw new RestoreError(`disk ${src.label ?? key} of ${input.name} reads back with SHA-256 ${got}, the restore point has ${want}`);
      say(`verified ${src.label ?? key}: SHA-256 ${got}`);
      disks.push({ key, fileName: target.fileName, capacityBytes: md.capacity, sha256: got });
    }
    if (input.powerOn) await client.vms.powerOn(vmMoref);
    await journal.resolve(jid);
    return { vmMoref, disks };
  } catch (err) {
    if (vmMoref) {
      try {
        await client.vms.destroyRestored(vmMoref, input.restoreId);
        await journal.resolve(jid);
        say(`removed the half-restored VM ${input.name}`);
      } catch (e) {
        await journal.failed(jid, (e as Error).message).catch(() => undefined);
      }
    } else {
      await journal.failed(jid, 'the VM may have been created before the failure').catch(() => undefined);
    }
    throw err;
  }
}
