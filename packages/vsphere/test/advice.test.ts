import { describe, expect, it } from 'vitest';
import { forOperators } from '../src/advice.ts';
import { ConnectError, makeFault, ThumbprintMismatchError } from '../src/soap/faults.ts';

const fault = (faultType: string, context: string, serverMessage = '') => makeFault({ faultType, context, serverMessage });
/** No managed object reference, no SOAP method name. */
const MOREF = /\b(vm|host|datastore|snapshot|group|resgroup|domain|task|session)-\d+\b|_Task\b/;

describe('forOperators', () => {
  it('says what was being done instead of the call and the moref, and adds what to do about the fault', () => {
    const msg = forOperators(fault('TaskInProgress', 'CreateSnapshot_Task on vm-42', 'The operation is not allowed in the current state.'));
    expect(msg).toBe(
      'taking the snapshot failed: another task is already running on this object (The operation is not allowed in the current state.). What to do: another task runs on this VM (vMotion, another backup product, a snapshot operation); the job tries again, and if it keeps happening look at Recent Tasks in the vSphere Client.',
    );
    expect(msg).not.toMatch(MOREF);
  });

  it('keeps what a caller put before the message, and finds the fault through `cause`', () => {
    const inner = fault('ApplicationQuiesceFault', 'CreateSnapshot_Task on vm-7', 'VSS writer timed out');
    const wrapped = new Error(`disk Hard disk 1 (hotadd): quiescing the guest failed and the job requires it: ${inner.message}`, { cause: inner });
    const msg = forOperators(wrapped);
    expect(msg).toMatch(/^disk Hard disk 1 \(hotadd\): quiescing the guest failed and the job requires it: taking the snapshot failed: guest quiescing failed \(VSS writer timed out\)\. What to do: VMware Tools could not quiesce/);
    expect(msg).not.toMatch(MOREF);
  });

  it('maps subtypes to their own advice, or their parent class', () => {
    expect(forOperators(fault('FileLocked', 'ReconfigVM_Task (attach disk) on vm-3', ''))).toMatch(/^changing the VM's configuration failed: file is locked\. What to do: a file of the VM is locked/);
    expect(forOperators(fault('TooManySnapshotLevels', 'CreateSnapshot_Task on vm-3', ''))).toMatch(/What to do: the VM's snapshots need attention/);
    expect(forOperators(fault('InvalidDatastorePath', 'CreateVM_Task on group-v3', ''))).toMatch(/^creating the VM failed: file error\. What to do: check the VM's datastore/);
    expect(forOperators(fault('NoPermission', 'RemoveSnapshot_Task on snapshot-12', ''))).toMatch(/^removing the snapshot failed: permission denied\. What to do: give the vCenter account/);
  });

  it('names CBT and property reads in words; an unknown fault keeps its text without advice', () => {
    expect(forOperators(fault('InvalidArgument', 'QueryChangedDiskAreas on vm-42 disk 2000 from 0', ''))).toBe('asking vCenter which blocks changed (Changed Block Tracking) failed: invalid argument');
    expect(forOperators(fault('SomethingNew', 'reading VirtualMachine vm-42', 'odd'))).toBe("reading the VM's configuration failed: SomethingNew (odd)");
  });

  it('transport errors get network advice; a thumbprint mismatch keeps its own', () => {
    expect(forOperators(new ConnectError('cannot connect to vc.example:443 (ECONNREFUSED)'))).toMatch(/What to do: the Transporter cannot reach vCenter or the host/);
    const tm = new ThumbprintMismatchError('vc.example', 'AA', 'BB');
    expect(forOperators(tm)).toBe(tm.message);
  });

  it("names morefs left in a task's description by what they are, and drops the simulator's Go type names", () => {
    expect(forOperators(fault('ApplicationQuiesceFault', 'creating snapshot of vm-58', '*types.ApplicationQuiesceFault'))).toMatch(/^creating snapshot of the VM failed: guest quiescing failed\. What to do: VMware Tools/);
    expect(forOperators(new Error('removing snapshot snapshot-12 of vm-3 on host-9 failed'))).toBe('removing the snapshot of the VM on the host failed');
    expect(forOperators(new Error('attaching [ds] a/a.vmdk to vm-7 failed'))).toBe('attaching [ds] a/a.vmdk to the VM failed');
    // A name that only looks like a moref, where no task description puts one, stays.
    expect(forOperators(new Error('taken over from Transporter vm-12345678'))).toBe('taken over from Transporter vm-12345678');
  });

  it('leaves a plain error as it is', () => {
    expect(forOperators(new Error('repository is full'))).toBe('repository is full');
  });
});
