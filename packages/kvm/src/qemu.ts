/**
 * Running a VM in QEMU (qemu-system-x86_64) for instant boot and for checking
 * restored disks: a fixed, minimal machine (`-nodefaults -no-user-config`, no
 * display), the serial console written to a file, QMP on a unix socket, BIOS
 * or UEFI (OVMF) firmware, disks as a list, and optionally one user-mode NIC
 * with host forwards for a health check.
 *
 * QEMU's own output goes to a file, not to a pipe of ours: a VM outlives a
 * controller that is killed (kill -9), and writes to a pipe nobody reads any
 * more would block or kill it before the sweep gets to stop it in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { access, constants, readFile, rm } from 'node:fs/promises';
import { QmpClient } from './qmp.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';

export type Accel = 'kvm' | 'tcg';
export type Firmware = 'bios' | 'efi';
export type DiskFormat = 'raw' | 'qcow2' | 'vmdk';
export type DiskInterface = 'virtio' | 'sata' | 'ide';

export interface QemuDrive {
  /** A file path, or anything QEMU's `file=` takes (an nbd+unix:// URI). */
  file: string;
  format: DiskFormat;
  interface: DiskInterface;
  /** The drive's id, used by QMP (drive-mirror's `device`); drive0, drive1, … by default. */
  id?: string;
  readOnly?: boolean;
}

export interface QemuForward {
  /** TCP port on 127.0.0.1 of the host. */
  hostPort: number;
  guestPort: number;
}

export interface QemuOptions {
  /** Memory in MiB. */
  memoryMiB: number;
  cpus: number;
  firmware?: Firmware;
  drives: QemuDrive[];
  /** The serial console (ttyS0) is written here; created empty first. */
  serialLog: string;
  /** QMP listens here; an old socket file is removed first. */
  qmpSocket: string;
  /** QEMU's stdout and stderr; `<serialLog>.qemu` by default. */
  outputLog?: string;
  /** 'auto' (the default): KVM when /dev/kvm can be opened, else TCG. */
  accel?: Accel | 'auto';
  /** A user-mode NIC (e1000, which Debian's kernel has as a module and every guest knows). */
  nic?: { model?: 'e1000' | 'virtio-net-pci'; forwards?: QemuForward[] };
  /** Exit instead of rebooting (a guest that panics and reboots would hide the panic). */
  noReboot?: boolean;
  /** The SMBIOS system UUID, as vSphere gives every VM one. */
  uuid?: string;
  /** A name shown in `ps` (-name), so a sweep can tell its own VMs apart. */
  name?: string;
  /** Anything else, appended last. */
  extraArgs?: string[];
}

/** The OVMF images Debian ships (package ovmf), newest layout first. */
export const OVMF_CANDIDATES = ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/ovmf/OVMF.fd'];

const readable = (p: string, mode = constants.R_OK) =>
  access(p, mode).then(
    () => true,
    () => false,
  );

/**
 * KVM when /dev/kvm can be opened and the CPU offers hardware virtualisation
 * (vmx/svm in /proc/cpuinfo), else TCG. /dev/kvm alone is not enough: on VMs
 * without nested virtualisation it can exist and open, and QEMU then runs the
 * BIOS and GRUB but hangs in the guest kernel's first instructions (seen here
 * and by delivery's boot test).
 */
export async function pickAccel(wanted: Accel | 'auto' = 'auto'): Promise<Accel> {
  if (wanted !== 'auto') return wanted;
  if (!(await readable('/dev/kvm', constants.R_OK | constants.W_OK))) return 'tcg';
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo) ? 'kvm' : 'tcg';
}

/** The first OVMF firmware file present; a clear error when there is none. */
export async function findOvmf(candidates = OVMF_CANDIDATES): Promise<string> {
  for (const c of candidates) if (await readable(c)) return c;
  throw new Error(`UEFI firmware asked for but no OVMF found (looked at ${candidates.join(', ')}; Debian package ovmf)`);
}

/** The command line for `opts` (exported for the journal and for tests that look at it). */
export function qemuArgs(opts: QemuOptions, accel: Accel, ovmf?: string): string[] {
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    // TCG on one host thread: delivery's boot tests saw guest processes die of stale translations with
    // thread=multi on QEMU 7.2; a guest here boots fine on one thread.
    '-accel', accel === 'kvm' ? 'kvm' : 'tcg,thread=single',
    '-m', String(opts.memoryMiB),
    '-smp', String(opts.cpus),
    '-serial', `file:${opts.serialLog}`,
    '-qmp', `unix:${opts.qmpSocket},server=on,wait=off`,
  ];
  if (opts.name) args.push('-name', opts.name);
  if (opts.firmware === 'efi') {
    if (!ovmf) throw new Error('UEFI firmware asked for without an OVMF path');
    // A split image (OVMF_CODE*.fd) is a read-only flash chip of its own; the combined OVMF.fd is given as -bios.
    // With no variable store the firmware keeps its settings for this run only, which a boot of a copy needs.
    if (/_CODE[^/]*\.fd$/.test(ovmf)) args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.replace(/,/g, ',,')}`);
    else args.push('-bios', ovmf);
  }
  if (opts.uuid) args.push('-uuid', opts.uuid);
  if (opts.noReboot) args.push('-no-reboot');
  let ahci = false;
  opts.drives.forEach((d, i) => {
    const id = d.id ?? `drive${i}`;
    // Commas in a file name are doubled: QEMU's option syntax would split the path at them.
    args.push('-drive', `file=${d.file.replace(/,/g, ',,')},format=${d.format},if=none,id=${id}${d.readOnly ? ',readonly=on' : ''}`);
    const boot = `bootindex=${i}`;
    switch (d.interface) {
      case 'virtio':
        args.push('-device', `virtio-blk-pci,drive=${id},${boot}`);
        break;
      case 'sata':
        if (!ahci) args.push('-device', 'ahci,id=ahci0');
        ahci = true;
        args.push('-device', `ide-hd,drive=${id},bus=ahci0.${i},${boot}`);
        break;
      case 'ide':
        // The PC machine's PIIX controller: two buses, master and slave on each.
        if (i > 3) throw new Error('at most 4 IDE disks');
        args.push('-device', `ide-hd,drive=${id},bus=ide.${Math.floor(i / 2)},unit=${i % 2},${boot}`);
        break;
    }
  });
  if (opts.nic) {
    const fwd = (opts.nic.forwards ?? []).map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`).join('');
    args.push('-netdev', `user,id=net0${fwd}`, '-device', `${opts.nic.model ?? 'e1000'},netdev=net0`);
  } else args.push('-nic', 'none');
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** The end of a console log, for error messages. */
const tail = (s: string, chars = 2000) => (s.length > chars ? `…${s.slice(-chars)}` : s);

// ESC [ … letter: cursor and colour sequences on the console.
const CSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');
export const consoleText = (raw: string) => raw.replace(CSI, '').replace(/\r/g, '');

/** The serial log as text ('' while it does not exist yet). */
export function readSerial(file: string): string {
  try {
    return consoleText(readFileSync(file, 'latin1'));
  } catch {
    return '';
  }
}

/**
 * Waits until the serial log matches `re` (polling the file; QEMU writes it
 * unbuffered). Rejects with the log's tail on timeout, or as soon as
 * `exited()` says QEMU is gone, then with `why()` (QEMU's own last words).
 */
export async function waitForSerial(
  file: string,
  re: RegExp,
  opts: { timeoutMs: number; exited?: () => boolean; why?: () => string; pollMs?: number },
): Promise<RegExpExecArray> {
  const end = Date.now() + opts.timeoutMs;
  for (;;) {
    const text = readSerial(file);
    const m = re.exec(text);
    if (m) return m;
    if (opts.exited?.()) {
      throw new Error(`QEMU exited while waiting for ${re} on the serial console${opts.why ? `: ${opts.why()}` : ''}\nthe console ends with:\n${tail(text)}`);
    }
    if (Date.now() > end) throw new Error(`no ${re} on the serial console within ${opts.timeoutMs / 1000} s; it ends with:\n${tail(text)}`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
}

export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface QemuHandle {
  pid: number;
  process: ChildProcess;
  accel: Accel;
  args: string[];
  qmp: QmpClient;
  serialLog: string;
  outputLog: string;
  /** Resolves when QEMU has exited. */
  exited: Promise<QemuExit>;
  /** The serial console so far, terminal escapes removed. */
  serial(): string;
  /** QEMU's own output (stderr) so far. */
  output(): string;
  waitForSerial(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** QMP `quit`, then SIGKILL if QEMU is still there after `graceMs`. */
  stop(graceMs?: number): Promise<QemuExit>;
}

/** Starts QEMU and connects to its QMP socket; throws (with QEMU's output) if it exits first. */
export async function startQemu(opts: QemuOptions): Promise<QemuHandle> {
  const accel = await pickAccel(opts.accel);
  const ovmf = opts.firmware === 'efi' ? await findOvmf() : undefined;
  const args = qemuArgs(opts, accel, ovmf);
  const outputLog = opts.outputLog ?? `${opts.serialLog}.qemu`;
  await rm(opts.qmpSocket, { force: true });
  closeSync(openSync(opts.serialLog, 'w'));
  const out = openSync(outputLog, 'w');
  let child: ChildProcess;
  try {
    child = spawn(QEMU_BINARY, args, { stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  const output = () => {
    try {
      return readFileSync(outputLog, 'utf8');
    } catch {
      return '';
    }
  };
  let exit: QemuExit | null = null;
  const exited = new Promise<QemuExit>((resolve) => {
    child.once('exit', (code, signal) => resolve((exit = { code, signal })));
    child.once('error', () => resolve((exit = { code: null, signal: null })));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const why = () => {
    const text = output().trim();
    return `${exit?.signal ? `killed by ${exit.signal}` : `exit code ${exit?.code}`}${text ? `: ${tail(text, 1500)}` : ''}`;
  };
  let qmp: QmpClient;
  try {
    qmp = await Promise.race([
      QmpClient.connect(opts.qmpSocket, { timeoutMs: 30_000, alive: () => exit === null }),
      spawnError.then((err) => {
        throw new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${QEMU_BINARY} is not installed (Debian package qemu-system-x86)` : err.message);
      }),
    ]);
  } catch (err) {
    if (exit === null) child.kill('SIGKILL');
    await exited;
    throw new Error(`QEMU did not start: ${(err as Error).message}${exit ? ` (${why()})` : ''}`);
  }
  const handle: QemuHandle = {
    pid: child.pid!,
    process: child,
    accel,
    args,
    qmp,
    serialLog: opts.serialLog,
    outputLog,
    exited,
    serial: () => readSerial(opts.serialLog),
    output,
    waitForSerial: (re, timeoutMs) => waitForSerial(opts.serialLog, re, { timeoutMs, exited: () => exit !== null, why }),
    async stop(graceMs = 5000) {
      if (exit) return exit;
      await qmp.execute('quit').catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      qmp.close();
      return result;
    },
  };
  return handle;
}

/**
 * Who a process is: its pid, its start time in clock ticks since boot (field
 * 22 of /proc/<pid>/stat) and its command line. A pid alone can be reused by
 * an unrelated process after a crash; pid + start time cannot.
 */
export interface ProcessIdentity {
  pid: number;
  startTicks: number;
  cmdline: string[];
}

/** The identity of a running process, or null when there is none with that pid. */
export async function processIdentity(pid: number): Promise<ProcessIdentity | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]);
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0$/, '').split('\0');
    return { pid, startTicks, cmdline };
  } catch {
    return null;
  }
}

/** True when `pid` is still the very process recorded as `id` (same start time and command line). */
export async function isSameProcess(id: ProcessIdentity): Promise<boolean> {
  const now = await processIdentity(id.pid);
  return !!now && now.startTicks === id.startTicks && now.cmdline.join('\0') === id.cmdline.join('\0');
}
