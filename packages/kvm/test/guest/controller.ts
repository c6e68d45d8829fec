/**
 * An instant-boot controller in a process of its own, for the kill -9 tests:
 * it starts an instant boot of a restore point and says how far it got on
 * stdout, one JSON line per step ({step: 'started', qemuPid} and, with
 * `mirrorTo`, {step: 'mirroring'} once the mirror jobs run), then waits to be
 * killed. Arguments: one JSON object (ControllerArgs).
 */
import { Repository } from '@vaultline/repository';
import { InstantBoot } from '../../src/index.ts';

export interface ControllerArgs {
  repoDir: string;
  passphrase?: string;
  ref: { vmId: string; id: string };
  diskKey: string;
  workDir: string;
  /** Mirror (throttled, so it is still running when killed) after the login prompt. */
  mirrorTo?: string;
  loginPrompt?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ControllerArgs;
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const repo = await Repository.open(args.repoDir, args.passphrase ? { passphrase: args.passphrase } : {});
const ib = await InstantBoot.start({
  workDir: args.workDir,
  repository: repo,
  ref: args.ref,
  disks: [{ key: args.diskKey, interface: 'virtio' }],
  hardware: { memoryMiB: 256, numCpu: 1, firmware: 'bios' },
  accel: 'auto',
});
say({ step: 'started', qemuPid: ib.qemu.pid });
if (args.mirrorTo) {
  await ib.qemu.waitForSerial(new RegExp(args.loginPrompt ?? 'login: '), 180_000);
  // 1 MiB/s: the 64 MiB guest takes about a minute, so a kill lands mid-way.
  void ib.mirror(args.mirrorTo, 'qcow2', { bytesPerSecond: 1024 * 1024 }).catch((err: unknown) => say({ step: 'failed', message: (err as Error).message }));
  // Mid-way: the jobs run and have copied something.
  for (;;) {
    const jobs = await ib.qemu.qmp.execute<Array<{ offset: number; len: number }>>('query-block-jobs');
    if (jobs.length > 0 && jobs.every((j) => j.offset > 0 && j.offset < j.len)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  say({ step: 'mirroring', targets: ib.state.mirror?.targets.map((t) => t.path) });
}
setInterval(() => undefined, 60_000);
