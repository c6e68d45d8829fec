/**
 * @vaultline/flr — file-level restore. A restore point's disks are served
 * read-only by an NBD server of our own (nbd/), presented as files by nbdfuse,
 * their partitions put on read-only loop devices and mounted read-only
 * (layers.ts, probe.ts); sessions (sessions.ts) journal every layer before it
 * exists (journal.ts) so the sweep (sweep.ts) can undo what a killed Director
 * left; browse.ts lists, reads and archives files safely.
 */
export { NbdServer } from './nbd/server.ts';
export type { NbdExport, NbdExtent, NbdServerOptions } from './nbd/server.ts';
export { NbdClient, NbdError } from './nbd/client.ts';
export { diskExport } from './nbd/repository-export.ts';
export * as nbdProtocol from './nbd/protocol.ts';
export { FileRestoreSessions, FlrSessionError, Session } from './sessions.ts';
export type { DiskView, OpenRequest, PartitionView, SessionView, SessionsOptions } from './sessions.ts';
export { archive, BrowseError, list, openFile, parsePath, display, toRef, resolve as resolvePath } from './browse.ts';
export type { ArchiveStats, Entry, EntryType, Listing, OpenedFile } from './browse.ts';
export { sweep } from './sweep.ts';
export type { SweepReport } from './sweep.ts';
export type { FlrJournal, FlrJournalRow, FlrLayer } from './journal.ts';
export { pgFlrJournal } from './pg-journal.ts';
export { FlrError, FlrUnavailableError, missingPrivileges, REQUIRED_TOOLS } from './system.ts';
export { loopDevices, mountTable } from './layers.ts';
