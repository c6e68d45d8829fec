/**
 * vSphere errors in an operator's words. The client's messages name the SOAP call and the managed object
 * ("CreateSnapshot_Task on vm-42 failed: …"), which helps a developer and means nothing in a run's log:
 * `forOperators` puts what was being done in its place ("taking the snapshot failed: …") and adds what to
 * do about the fault. It works on the text, so a message a caller has wrapped ("disk Hard disk 1 (hotadd):
 * …") keeps its prefix; the fault's type is read from the error or its causes.
 */
import { ConnectError, ThumbprintMismatchError, TimeoutError, TlsError, VimFault } from './soap/faults.ts';

/** What a call was doing, by its SOAP method (without `_Task`). */
const ACTIONS: Record<string, string> = {
  CreateSnapshot: 'taking the snapshot',
  RemoveSnapshot: 'removing the snapshot',
  RemoveAllSnapshots: 'removing the snapshots',
  ConsolidateVMDisks: "consolidating the VM's disks",
  ReconfigVM: "changing the VM's configuration",
  QueryChangedDiskAreas: 'asking vCenter which blocks changed (Changed Block Tracking)',
  ExportVm: "opening the VM's disks for export",
  ExportSnapshot: "opening the snapshot's disks for export",
  HttpNfcLeaseProgress: 'reporting the transfer progress to vCenter',
  HttpNfcLeaseComplete: 'completing the transfer',
  HttpNfcLeaseAbort: 'abandoning the transfer',
  CreateVM: 'creating the VM',
  ImportVApp: 'starting the import of the VM',
  PowerOnVM: 'powering the VM on',
  PowerOffVM: 'powering the VM off',
  Destroy: 'deleting',
  Rename: 'renaming the VM',
  RelocateVM: 'moving the VM',
  CancelTask: 'cancelling the vCenter task',
};

/** The advice for a fault type: what the operator can do. */
const ADVICE: Record<string, string> = {
  InvalidLogin: 'check the user name and password of this vCenter under vCenters',
  NotAuthenticated: 'the vCenter session ended; the job signs in again on its next try',
  NoPermission: "give the vCenter account Vaultline uses the privilege named above (README: vCenter permissions), on the VM's folder or higher, with propagation",
  ManagedObjectNotFound: 'the VM or its snapshot no longer exists (deleted, or moved to another vCenter); edit the job if the VM is gone',
  InvalidPowerState: 'the VM changed power state during the operation; try again',
  InvalidState: 'the VM is busy (vMotion, another backup, a snapshot being consolidated); the job tries again, and if it keeps happening look at Recent Tasks in the vSphere Client',
  TaskInProgress: 'another task runs on this VM (vMotion, another backup product, a snapshot operation); the job tries again, and if it keeps happening look at Recent Tasks in the vSphere Client',
  FileLocked: "a file of the VM is locked, often by a disk still attached to another backup proxy; detach it there or run Snapshots > Consolidate on the VM",
  FileNotFound: 'a file the VM refers to is missing on its datastore; the VM may need its disks consolidated (Snapshots > Consolidate)',
  CannotAccessFile: "the ESXi host cannot read a file of the VM; check the datastore is mounted and accessible on the VM's host",
  FileFault: "check the VM's datastore: mounted, accessible and with free space",
  ApplicationQuiesceFault: "VMware Tools could not quiesce the guest: check that Tools runs and, on Windows, that the VSS writers are healthy (vssadmin list writers); or set the job's quiescing to 'try' to fall back to a crash-consistent snapshot",
  SnapshotFault: "the VM's snapshots need attention: delete old snapshots (at most 32 in a chain) and consolidate if vSphere asks for it",
  HostCommunication: "vCenter cannot reach the VM's ESXi host: check the host's connection state in the vSphere Client",
  SystemError: 'vSphere reported an internal error; the job tries again, and if it keeps happening look at the host and vCenter logs',
  NotSupported: 'this vSphere edition or version does not allow it (licence or version); see the message above',
  InvalidDeviceSpec: "vSphere refused the device change; the VM's hardware version or controller may not allow it",
  RequestCanceled: 'someone or something cancelled the vCenter task',
};

/** The vSphere fault carried by `err` or one of its causes (a wrapper keeps the original as `cause`). */
function faultIn(err: unknown): VimFault | Error | null {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof VimFault || e instanceof ConnectError || e instanceof TimeoutError || e instanceof TlsError) return e;
  }
  return null;
}

function adviceFor(fault: VimFault | Error | null): string | null {
  if (!fault) return null;
  if (fault instanceof ThumbprintMismatchError) return null; // its message already says what to do
  if (fault instanceof TlsError) return "the vCenter's certificate is not the one trusted for it: confirm its thumbprint under vCenters";
  if (fault instanceof ConnectError) return 'the Transporter cannot reach vCenter or the host: check the network, DNS and that port 443 is open';
  if (fault instanceof TimeoutError) return 'vCenter or the host did not answer in time; the job tries again';
  if (!(fault instanceof VimFault)) return null;
  if (ADVICE[fault.faultType]) return ADVICE[fault.faultType]!;
  // A type without advice of its own takes its class's, then the parent class's (FileLocked, then FileFault).
  for (let c: unknown = fault.constructor; c && c !== VimFault; c = Object.getPrototypeOf(c)) {
    const own = Object.prototype.hasOwnProperty.call(c, 'faultType') ? (c as { faultType: string }).faultType : (c as { name: string }).name;
    if (ADVICE[own]) return ADVICE[own]!;
  }
  return null;
}

/** "CreateSnapshot_Task on vm-42", "QueryChangedDiskAreas on vm-42 disk 2000 from 0", "ReconfigVM_Task (…) on vm-42". */
const CALL = /\b([A-Z][A-Za-z]*?)(?:_Task)?(?: \([^)]*\))? on (?:[a-z]+-[\w-]*\d+|session\[[^\]]*\][\w-]*)(?: disk \d+ from \d+)?/g;
/** "reading VirtualMachine vm-42" (a property read). */
const READING = /\breading ([A-Z][A-Za-z]+) [a-z]+-[\w-]*\d+\b/g;
const FRIENDLY: Record<string, string> = { VirtualMachine: "the VM's configuration", HostSystem: "the host's details", Datastore: "the datastore's details", Task: "the vCenter task's state" };

/**
 * A moref left in a task's description ("creating snapshot of vm-58", "removing snapshot snapshot-3 of vm-58",
 * "attaching … to vm-7"), by what it names. Only where a task's description puts one (after of/on/to/from/
 * snapshot), so a name that merely looks like a moref elsewhere (a Transporter "vm-12345678") is left alone.
 */
const MOREF = /(?<=\b(?:of|on|to|from|snapshot) )(vm|snapshot|host|datastore|datacenter|group|resgroup|domain|network|dvportgroup|task|session)-\d+\b/g;
const NOUN: Record<string, string> = { vm: 'the VM', snapshot: 'the snapshot', host: 'the host', datastore: 'the datastore', datacenter: 'the datacenter', group: 'the folder', resgroup: 'the resource pool', domain: 'the cluster', network: 'the network', dvportgroup: 'the port group', task: 'the task', session: 'the session' };
/** A fault's Go type where vcsim (govmomi's simulator) puts its message: "(*types.ApplicationQuiesceFault)"; already explained. */
const GO_TYPE = / ?\(\*?types\.\w+\)/g;

/** A line of text with the calls, morefs and type names of vSphere errors in it replaced by what was being done. */
export function operatorText(text: string): string {
  return text
    .replace(CALL, (_m, method: string) => ACTIONS[method] ?? `the vCenter call ${method}`)
    .replace(READING, (_m, type: string) => `reading ${FRIENDLY[type] ?? type}`)
    .replace(GO_TYPE, '')
    .replace(/\bsnapshot snapshot-\d+\b/g, 'the snapshot')
    .replace(MOREF, (_m, kind: string) => NOUN[kind] ?? 'it');
}

/**
 * The message of `err` for a run's log and the console: calls and morefs replaced by what was being done,
 * and, for a vSphere fault, what to do about it.
 */
export function forOperators(err: unknown): string {
  const text = operatorText(err instanceof Error ? err.message : String(err));
  const advice = adviceFor(faultIn(err));
  return advice ? `${text}. What to do: ${advice}.` : text;
}
