/**
 * @vaultline/flr — file-level restore. A restore point's disks are served
 * read-only by an NBD server of our own (nbd/) in the Director; the helper
 * process vaultline-flr (helper/) presents them as files with nbdfuse, puts
 * their partitions on read-only loop devices and mounts them read-only
 * (mounts.ts, layers.ts, probe.ts) in a mount namespace of its own, and reads
 * files safely (browse.ts) on the Director's behalf. Both sides journal every
 * layer before it exists (journal.ts) so the sweep (sweep.ts) can undo what a
 * killed process left.
 */
export { NbdServer } from './nbd/server.ts';
export type { NbdExport, NbdExtent, NbdServerOptions } from './nbd/server.ts';
export { NbdClient, NbdError } from './nbd/client.ts';
export { diskExport } from './nbd/repository-export.ts';
export * as nbdProtocol from './nbd/protocol.ts';
export { FileRestoreSessions, Session } from './sessions.ts';
export type { DiskView, Item, OpenRequest, PartitionView, SessionView, SessionsOptions } from './sessions.ts';
export { MountSessions } from './mounts.ts';
export type { MountedView, MountRequest, MountSessionsOptions } from './mounts.ts';
export { FlrHelper } from './helper/client.ts';
export { SOCKET_NAME as FLR_HELPER_SOCKET, TOKEN_NAME as FLR_HELPER_TOKEN } from './helper/protocol.ts';
export { archive, BrowseError, list, openFile, parsePath, display, toRef, resolve as resolvePath } from './browse.ts';
export type { ArchiveStats, Entry, EntryType, Listing, OpenedFile } from './browse.ts';
export { sweep } from './sweep.ts';
export type { SweepReport } from './sweep.ts';
export type { FlrJournal, FlrJournalRow, FlrLayer } from './journal.ts';
export { pgFlrJournal } from './pg-journal.ts';
export { fileFlrJournal } from './file-journal.ts';
export { FlrError, FlrSessionError, FlrUnavailableError, missingPrivileges, REQUIRED_TOOLS } from './system.ts';
export { loopDevices, mountTable } from './layers.ts';
