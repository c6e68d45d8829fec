/**
 * Booting the appliance's disk in QEMU, for the boot test and for trying an
 * image locally: user networking with host forwards, the serial console
 * captured to a file, the HMP monitor on a socket (ACPI power button), and
 * settings handed in over fw_cfg as vaultline-guestinfo reads them.
 *
 * KVM is used when it really runs a Linux kernel: /dev/kvm can exist and still
 * fail on a guest kernel (this project's build VM runs BIOS and GRUB under KVM,
 * then hangs in the kernel's first instructions), so the choice is made by
 * booting the appliance's own kernel for a few seconds (`probeKvm`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { access, constants, rm } from 'node:fs/promises';
import net from 'node:net';
import { run } from './exec.ts';

export type Accel = 'kvm' | 'tcg';

/** KVM if it boots `kernel` to its first console line within `timeoutMs`, else TCG (with the reason). */
export async function probeKvm(kernel: string, timeoutMs = 20_000): Promise<{ accel: Accel; why: string }> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', why: '/dev/kvm is missing or not usable' };
  }
  const r = await run(
    'qemu-system-x86_64',
    ['-accel', 'kvm', '-m', '512', '-nographic', '-no-reboot', '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1', '-net', 'none'],
    { allowFail: true, timeoutMs },
  );
  const out = r.stdout + r.stderr;
  if (/Linux version/.test(out)) return { accel: 'kvm', why: 'KVM runs the appliance kernel' };
  const err = /KVM internal error[^\n]*|failed to[^\n]*|Could not access KVM[^\n]*/.exec(out)?.[0];
  return { accel: 'tcg', why: err ? `KVM failed: ${err}` : `KVM did not get the appliance kernel to its first console line within ${timeoutMs / 1000} s (no output after the BIOS)` };
}

export interface VmOptions {
  disk: string;
  format: 'qcow2' | 'raw' | 'vmdk';
  accel: Accel;
  cpus?: number;
  memoryMiB?: number;
  /** host port → guest port (TCP on 127.0.0.1). */
  forwards: Record<number, number>;
  /** fw_cfg strings: name (opt/…) → value. */
  fwCfg?: Record<string, string>;
  serialFile: string;
  monitorSocket: string;
  firmware?: 'bios' | 'efi';
  /** The VM's BIOS UUID (SMBIOS system UUID), as vSphere gives every VM one. */
  uuid?: string;
}

export interface Vm {
  process: ChildProcess;
  serial(): string;
  /** The serial console with terminal escapes removed. */
  text(): string;
  waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray>;
  monitor(command: string): Promise<string>;
  /** ACPI power button, then waits for QEMU to exit; returns its exit code. */
  powerdown(timeoutMs: number): Promise<number | null>;
  kill(): Promise<void>;
}

// ESC [ … letter: the console's cursor and colour sequences.
const CSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');
export const stripTerminal = (s: string) => s.replace(CSI, '').replace(/\r/g, '');

export async function bootVm(opts: VmOptions): Promise<Vm> {
  await rm(opts.serialFile, { force: true });
  await rm(opts.monitorSocket, { force: true });
  closeSync(openSync(opts.serialFile, 'w'));
  const fwd = Object.entries(opts.forwards)
    .map(([h, g]) => `,hostfwd=tcp:127.0.0.1:${h}-:${g}`)
    .join('');
  const args = [
    // TCG on one host thread: with thread=multi (QEMU 7.2, x86 guest) Node processes in the guest died of
    // SIGSEGV about once in ten runs, jumping into the middle of V8's JIT code or to address 0: code
    // another vCPU had just rewritten was still run from a stale translation.
    '-accel', opts.accel === 'kvm' ? 'kvm' : 'tcg,thread=single',
    '-smp', String(opts.cpus ?? 2),
    '-m', String(opts.memoryMiB ?? 3072),
    '-display', 'none',
    '-serial', `file:${opts.serialFile}`,
    '-monitor', `unix:${opts.monitorSocket},server,nowait`,
    // The system disk on a SCSI controller, as on vSphere (PVSCSI there, virtio-scsi here).
    '-drive', `file=${opts.disk},format=${opts.format},if=none,id=sys`,
    '-device', 'virtio-scsi-pci,id=scsi0',
    '-device', 'scsi-hd,drive=sys,bus=scsi0.0',
    '-netdev', `user,id=n0${fwd}`,
    '-device', 'virtio-net-pci,netdev=n0',
    '-no-reboot',
  ];
  if (opts.firmware === 'efi') args.push('-bios', '/usr/share/ovmf/OVMF.fd');
  if (opts.uuid) args.push('-uuid', opts.uuid);
  for (const [name, value] of Object.entries(opts.fwCfg ?? {})) args.push('-fw_cfg', `name=${name},string=${value}`);
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const serial = () => {
    try {
      return readFileSync(opts.serialFile, 'latin1');
    } catch {
      return '';
    }
  };
  const text = () => stripTerminal(serial());
  const vm: Vm = {
    process: child,
    serial,
    text,
    async waitFor(re, timeoutMs, what) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(text());
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`QEMU exited (code ${child.exitCode}) while waiting for ${what}: ${stderr.trim().split('\n').slice(-5).join(' / ')}`);
        if (Date.now() > end) throw new Error(`no ${what} on the serial console within ${timeoutMs / 1000} s; it ends with:\n${text().slice(-1500)}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
    monitor(command) {
      return new Promise((resolve, reject) => {
        const s = net.connect(opts.monitorSocket);
        let out = '';
        let sent = false;
        s.on('data', (d) => {
          out += d.toString();
          if (!sent && out.includes('(qemu)')) {
            sent = true;
            s.write(`${command}\n`);
          } else if (sent && out.split('(qemu)').length > 2) s.end();
        });
        s.on('end', () => resolve(stripTerminal(out)));
        s.on('error', reject);
        setTimeout(() => s.destroy(), 10_000).unref();
      });
    },
    async powerdown(timeoutMs) {
      await vm.monitor('system_powerdown');
      const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
      const r = await Promise.race([exited, t]);
      if (r === 'timeout') throw new Error(`the VM did not power off within ${timeoutMs / 1000} s of the ACPI power button; the console ends with:\n${text().slice(-1500)}`);
      return r;
    },
    async kill() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  return vm;
}

