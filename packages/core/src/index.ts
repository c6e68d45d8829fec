/**
 * @vaultline/core: the backup and restore engine over narrow ports. The Transporter wires the ports to
 * vSphere, its block devices, the repository and Postgres; nothing here knows them.
 */
export { CancelledError, DamagedPointError, DetachError, QuiesceError, RestoreError, TransportUnavailable, VmBackupError } from './errors.ts';

export { runVmBackup } from './backup/cycle.ts';
export { ANOMALY_HISTORY_DEPTH, assessChangedData, DEFAULT_ANOMALY_THRESHOLDS, summarise } from './backup/anomaly.ts';
export type { AnomalyThresholds, AnomalyVerdict, DataSummary, DiskDataStats, DiskFinding } from './backup/anomaly.ts';
export type { DiskOutcome, PreviousPoint, VmBackupDeps, VmBackupInput, VmBackupResult } from './backup/cycle.ts';
export type { Area, DatastoreInfo, LocalDevices, SourceReader, TransportChoice, VmDisk, VmInfo, VSpherePort } from './backup/ports.ts';
export type { CleanupJournal, CleanupKind, CleanupRecord } from './backup/journal.ts';
export { Semaphore, TransporterLimits } from './backup/limits.ts';
export { complement, normaliseAreas, pieces, sampleBlocks, totalLength } from './backup/areas.ts';
export { DiskMeter, mib, secondsSince } from './backup/progress.ts';
export type { DiskUpdate, ProgressSink } from './backup/progress.ts';
export type { RunLogLevel, RunRecorder } from './run/recorder.ts';
export { ReadAhead, readAheadFor } from './backup/readahead.ts';
export type { ReadAheadOptions } from './backup/readahead.ts';
export { chooseInTurn, chooseTransport, chooseTransports, hotaddProblem, SAN_NEVER, sanProblem } from './backup/transport-select.ts';
export type { DiskFacts, TransporterFacts } from './backup/transport-select.ts';

export { restoreVm } from './restore/restore-vm.ts';
export type { RestoreVmDeps, RestoreVmInput, RestoreVmResult } from './restore/restore-vm.ts';
export { restoreDisk } from './restore/restore-disk.ts';
export type { RestoreDiskDeps, RestoreDiskInput } from './restore/restore-disk.ts';
export type { WrittenDisk } from './restore/disk-write.ts';
export type { PlacementRequest } from './restore/placement.ts';
export { chooseWriteTransport, networkWriteProblem, SAN_WRITE_REASON } from './restore/write-transport.ts';
export { parseRestoreTarget, undoRestore } from './restore/undo.ts';
export type { RestoreJournalTarget, SwapStep, UndoReport } from './restore/undo.ts';
export type {
  DatastoreFile,
  DiskImageSource,
  HardwareDisk,
  HotAddedDiskWriter,
  NewVm,
  PlacementTargets,
  RestoreDevices,
  RestoreInventory,
  RestorePort,
  RestoreVmInfo,
  VmHardware,
  VmImport,
} from './restore/ports.ts';
