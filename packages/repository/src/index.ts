/**
 * @vaultline/repository — deduplicating, compressed, optionally encrypted store
 * of VM restore points (forever-incremental: every restore point is a complete
 * image by reference). Format: docs/repository-format.md.
 *
 *   await Repository.init(path, { passphrase });
 *   const repo = await Repository.open(path, { passphrase });
 *   const rp = await openRestorePointWriter(repo, { vmId, parent });
 *   const disk = await rp.openDisk({ key: 'scsi0:0', capacity });
 *   await disk.write(offset, buffer);           // changed areas, any alignment
 *   const manifest = await rp.commit();         // or rp.abort()
 *   const reader = await openDiskReader(repo, { vmId, id: manifest.id }, 'scsi0:0');
 */
import type { Repository } from './repository.ts';
import { RestorePointWriter } from './restore-point-writer.ts';
import type { RestorePointOptions } from './restore-point-writer.ts';
import { DiskReader } from './disk-reader.ts';
import type { ReaderOptions } from './disk-reader.ts';
import type { RestorePointRef } from './types.ts';
import { ChunkPool } from './pool.ts';

export { Repository, assertSafeName } from './repository.ts';
export type { InitOptions, OpenOptions, RepositoryIdentity, ExpectedIdentity } from './repository.ts';
export { RestorePointWriter } from './restore-point-writer.ts';
export { DiskWriter } from './disk-writer.ts';
export type { RestorePointOptions } from './restore-point-writer.ts';
export type { DiskOptions } from './disk-writer.ts';
export { DiskReader } from './disk-reader.ts';
export type { ReaderOptions } from './disk-reader.ts';
export { verify, prune, gc, stats, deleteRestorePoint } from './maintenance.ts';
export type { VerifyReport, VerifyProblem, VerifyOptions, GcOptions, GcReport, RepositoryStats, AffectedRef } from './maintenance.ts';
export { planRetention } from './retention.ts';
export { copyRestorePoint, COPY_LABELS } from './copy.ts';
export type { CopyOptions, CopyResult } from './copy.ts';
export { byteEntropy, sampleEntropy, addNewBlob, emptyChangedData, ENTROPY_SAMPLE_BYTES, HIGH_ENTROPY_BITS } from './entropy.ts';
export type { ChangedDataStats } from './entropy.ts';
export type { RetentionPolicy, RetentionCandidate, RetentionDecision, KeepReason } from './retention.ts';
export { LockManager, Lock } from './locks.ts';
export type { LockInfo, LockKind, LockOptions } from './locks.ts';
export type { Backend, FileWriter, FileStat, LocalFiles, Retention } from './backends/backend.ts';
export { LocalBackend } from './backends/local.ts';
export { hardeningProblem } from './backends/immutable-helper.ts';
export { SftpBackend, probeSftpHostKey, sshFingerprint, HostKeyMismatchError } from './backends/sftp.ts';
export type { SftpOptions } from './backends/sftp.ts';
export { S3Backend } from './backends/s3.ts';
export type { S3Options } from './backends/s3.ts';
export * from './errors.ts';
export type { Manifest, DiskManifest, WriteStats, RestorePointRef } from './types.ts';
export { FORMAT_VERSION, DEFAULT_CHUNK_SIZE, deriveKek, KDF_LIMITS } from './format.ts';
export type { KdfParams } from './format.ts';
/** The pack footer lists its blob ids in the clear: a Transporter serving the repository answers which ids it holds without any key. */
export { ID_BYTES, PACK_ENTRY, PACK_TRAILER, decodePackEntries, decodePackTrailer } from './format.ts';
export type { PackEntry } from './format.ts';

/** Stop the warm (idle) worker pools kept for writers; for tests and clean shutdown. */
export function shutdownWorkerPools(): Promise<void> {
  return ChunkPool.shutdownIdle();
}

export function openRestorePointWriter(repo: Repository, opts: RestorePointOptions): Promise<RestorePointWriter> {
  return RestorePointWriter.open(repo, opts);
}

export { nonZeroRuns } from './restore-to-file.ts';
/** Page-aligned buffers (for O_DIRECT reads of devices and files). */
export { alignedBuffer } from './backends/direct.ts';

export function openDiskReader(repo: Repository, ref: RestorePointRef, diskKey: string, opts?: ReaderOptions): Promise<DiskReader> {
  return DiskReader.open(repo, ref, diskKey, opts);
}
