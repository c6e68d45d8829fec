import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../src/index.ts';

describe('quiesce failures on demand', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ port: 0, hotadd: false });
    await lab.createVm({ name: 'sql', disks: [{ capacityBytes: 4 * 1024 * 1024 }], cbt: true, powerOn: true });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const snapshot = async (quiesce: boolean) => {
    const soap = await lab.soap();
    const vm = await lab.getVm('sql');
    return soap.task(`<CreateSnapshot_Task><_this type="VirtualMachine">${vm.moref}</_this><name>q</name><memory>false</memory><quiesce>${quiesce}</quiesce></CreateSnapshot_Task>`);
  };

  it('a marked VM fails quiesced snapshots with ApplicationQuiesceFault, and still takes crash-consistent ones', async () => {
    await lab.failQuiesce('sql', true);
    await expect(snapshot(true)).rejects.toMatchObject({ faultType: 'ApplicationQuiesceFault' });
    expect(await snapshot(false)).toMatch(/^snapshot-/);
    await lab.failQuiesce('sql', false);
    expect(await snapshot(true)).toMatch(/^snapshot-/);
  });
});
