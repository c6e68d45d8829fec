import { describe, expect, it } from 'vitest';
import { runBytes, vmBytes } from './run-totals.ts';

const disk = (bytesRead: number, bytesWritten: number) => ({ bytesRead, bytesWritten });

describe('run byte totals', () => {
  const vmA = { disks: [disk(100, 10), disk(50, 5)] };
  const vmB = { disks: [disk(1000, 300)] };

  it('sums a VM’s disks: read and stored apart', () => {
    expect(vmBytes(vmA)).toEqual({ read: 150, stored: 15 });
    expect(vmBytes({ disks: [] })).toEqual({ read: 0, stored: 0 });
  });

  it('sums a run’s VMs, and is the sum of the VM rows', () => {
    const run = { vms: [vmA, vmB, { disks: [] }] };
    expect(runBytes(run)).toEqual({ read: 1150, stored: 315 });
    const rows = run.vms.map(vmBytes);
    expect(runBytes(run)).toEqual({ read: rows.reduce((n, r) => n + r.read, 0), stored: rows.reduce((n, r) => n + r.stored, 0) });
    expect(runBytes({ vms: [] })).toEqual({ read: 0, stored: 0 });
  });
});
