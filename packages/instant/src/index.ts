export { fileStem, recoveryTree } from './tree.ts';
export type { BaseFile, RecoveryDisk, RecoveryTree, RecoveryTreeOptions } from './tree.ts';
export { InstantRecovery, JOURNAL_FILE, readJournal, sweepInstantRecoveries } from './recovery.ts';
export type { ExportHost, RecoveryJournal, RecoveryState, StartOptions, SweepResult, VSpherePort } from './recovery.ts';
export { nfsExportHost } from './nfs-host.ts';
