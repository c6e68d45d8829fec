/**
 * The OVA appliance, built (or found up to date) by the same code as
 * `npm run build:ova`, checked as a package and then booted in QEMU from the
 * very VMDK inside it (a qcow2 overlay keeps the package unchanged).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest, readTar, summariseOvf, systemTarList, hardwareFromOvf } from '@vaultline/vmdk/testing';
import { startLab, type Lab } from '@vaultline/vsphere-lab';
import { pinnedFetch, type PinnedRequest } from '@vaultline/tls';
import { buildOva, type OvaBuild } from '../src/ova.ts';
import { freePort } from '@vaultline/config';
import { bootVm, probeKvm, type Accel, type Vm } from '../src/qemu.ts';
import { run } from '../src/exec.ts';
import { ROOT_START } from '../src/disk.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const GiB = 1024 ** 3;
const MIN = 60_000;
/** The console banner: the https address, then the certificate's SHA-256 on two lines of 16 bytes (what the browser shows to check). */
const HALF_FINGERPRINT = '((?:[0-9A-F]{2}:){15}[0-9A-F]{2})';
const BANNER = String.raw`Web console: +https:\/\/10\.0\.2\.15:8080\/\s*\r?\n\s*Certificate SHA-256: +${HALF_FINGERPRINT}\s*\r?\n\s+${HALF_FINGERPRINT}\s*\r?\n`;
/** …followed by the one-time password until it is changed; without it after. */
const BANNER_WITH_PASSWORD = new RegExp(String.raw`${BANNER}\s*First sign-in: user admin, one-time password ([A-Za-z0-9-]{20,})`);
const BANNER_WITHOUT_PASSWORD = new RegExp(String.raw`${BANNER}(?!\s*First sign-in)`);
/** The Director's certificate, as the VM console shows it (set by the first test). */
let fingerprint = '';
/**
 * fetch over TLS pinned to that certificate, with a time limit: a request into a VM's user network can
 * otherwise hang for good. The limit is generous: under TCG on one host thread the appliance runs many
 * times slower than on hardware (opening a browse session took over 20 s in one CI run).
 */
const http = (input: string, init: PinnedRequest = {}, limitMs = 60_000) => pinnedFetch(fingerprint)(input, { ...init, signal: AbortSignal.timeout(limitMs) });

let build: OvaBuild;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vaultline-ova-test-'));
let tar: Buffer;
let vmdkFile: string;

beforeAll(async () => {
  build = await buildOva({ rootDir: ROOT, log: (s) => process.stderr.write(s) });
  process.stderr.write(`ova test: ${build.ova} (${(build.bytes / 2 ** 20).toFixed(0)} MiB, ${build.cached ? 'up to date' : `built in ${build.seconds.toFixed(0)} s`})\n`);
  tar = readFileSync(build.ova);
}, 45 * MIN);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the OVA package', () => {
  it('is a ustar archive with the descriptor first, then the manifest, then the disk, as GNU tar reads it too', () => {
    const items = readTar(tar);
    const base = `vaultline-${build.version}`;
    expect(items.map((i) => i.name)).toEqual([`${base}.ovf`, `${base}.mf`, `${base}-disk1.vmdk`]);
    expect(systemTarList(build.ova)).toEqual(items.map((i) => ({ name: i.name, size: i.size })));
    const file = (name: string) => {
      const it = items.find((i) => i.name === name)!;
      return tar.subarray(it.offset, it.offset + it.size);
    };
    const mf = readManifest(file(`${base}.mf`).toString('ascii'));
    for (const it of [items[0]!, items[2]!]) expect(mf.get(it.name)).toBe(createHash('sha256').update(file(it.name)).digest('hex'));
    vmdkFile = path.join(tmp, items[2]!.name);
    writeFileSync(vmdkFile, file(items[2]!.name));
  });

  it('describes hardware fit for a HotAdd proxy: 4 vCPUs, 8 GiB, the system disk on PVSCSI with spare PVSCSI controllers, vmxnet3, disk.EnableUUID, vmx-13', () => {
    const desc = tar.subarray(readTar(tar)[0]!.offset, readTar(tar)[0]!.offset + readTar(tar)[0]!.size);
    const s = summariseOvf(desc);
    expect(s.system).toMatchObject({ name: 'Vaultline', virtualSystemType: 'vmx-13', osType: 'debian10_64Guest' });
    const hw = hardwareFromOvf(s);
    expect(hw).toMatchObject({ numCpu: 4, numCoresPerSocket: 2, memoryMiB: 8192, firmware: 'bios' });
    expect(hw.controllers).toEqual([0, 1, 2, 3].map((busNumber) => ({ kind: 'pvscsi', busNumber })));
    expect(hw.disks).toEqual([{ controller: 'pvscsi0', unitNumber: 0, capacityBytes: 32 * GiB }]);
    expect(hw.nics).toEqual([{ type: 'VirtualVmxnet3', networkName: 'VM Network' }]);
    expect(s.extraConfig).toEqual([{ key: 'disk.EnableUUID', value: 'TRUE' }]);
    expect(s.product).toEqual({ Product: 'Vaultline backup appliance', Vendor: 'Vaultline', Version: build.version });
    expect(s.references).toHaveLength(1);
    expect(Number(s.references[0]!.size)).toBe(readTar(tar)[2]!.size);
    expect(s.disks[0]!.format).toBe('http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized');
  });

  it('holds a streamOptimized VMDK that qemu-img checks clean and reads back as exactly the built disk image', async () => {
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', vmdkFile])).stdout) as { format: string; 'virtual-size': number; 'format-specific'?: { data?: { 'create-type'?: string } } };
    expect(info.format).toBe('vmdk');
    expect(info['format-specific']?.data?.['create-type']).toBe('streamOptimized');
    expect(info['virtual-size']).toBe(32 * GiB);
    const check = await run('qemu-img', ['check', vmdkFile], { allowFail: true });
    expect(check.stdout + check.stderr).toMatch(/No errors were found/);
    expect(check.code).toBe(0);
    // Content, byte for byte (qemu-img's own VMDK reader against the raw image).
    const cmp = await run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', vmdkFile, build.raw], { allowFail: true });
    expect(cmp.stdout.trim()).toBe('Images are identical.');
  }, 10 * MIN);
});

describe('the appliance, booted in QEMU from the OVA\'s disk', () => {
  let vm: Vm | undefined;
  let accel: { accel: Accel; why: string };
  let url: string;
  let sshPort: number;
  const key = path.join(tmp, 'id_ed25519');
  const overlay = path.join(tmp, 'system.qcow2');
  const ssh = async (command: string) =>
    (await run('ssh', ['-i', key, '-p', String(sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR', 'root@127.0.0.1', command])).stdout;
  let lab: Lab | undefined;
  let firstPassword = '';
  const biosUuid = randomUUID();
  let cookie = '';

  beforeAll(async () => {
    // The lab vCenter runs on this machine; the VM reaches it at 10.0.2.2 (QEMU's gateway to the host's loopback).
    lab = await startLab({ demo: true });
    accel = await probeKvm(build.kernel);
    process.stderr.write(`ova test: booting with ${accel.accel.toUpperCase()} (${accel.why})\n`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vmdkFile, '-F', 'vmdk', overlay]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const https = await freePort();
    sshPort = await freePort();
    url = `https://127.0.0.1:${https}`;
    vm = await bootVm({
      disk: overlay,
      format: 'qcow2',
      accel: accel.accel,
      forwards: { [https]: 8080, [sshPort]: 22 },
      fwCfg: { 'opt/vaultline/ssh_key': readFileSync(`${key}.pub`, 'utf8').trim() },
      uuid: biosUuid,
      serialFile: path.join(tmp, 'serial.log'),
      monitorSocket: path.join(tmp, 'monitor.sock'),
    });
  }, 5 * MIN);

  afterAll(async () => {
    await lab?.stop();
    if (vm) {
      writeFileSync(path.join(os.tmpdir(), 'vaultline-ova-test-serial.log'), vm.serial());
      await vm.kill();
    }
  });

  it('shows the https address, the certificate fingerprint and the one-time password on the VM console', async () => {
    const m = await vm!.waitFor(BANNER_WITH_PASSWORD, 15 * MIN, 'one-time password');
    fingerprint = `${m[1]!}:${m[2]!}`;
    firstPassword = m[3]!;
  }, 16 * MIN);

  it('answers /api/health with PostgreSQL, Redis and its own Transporter online, and serves the web console', async () => {
    let health: { ok: boolean; postgres: { ok: boolean }; redis: { ok: boolean }; transporters: { online: number; total: number } } | undefined;
    const end = Date.now() + 10 * MIN;
    while (Date.now() < end) {
      health = await http(`${url}/api/health`).then((r) => r.json() as Promise<typeof health>, () => undefined);
      if (health?.ok && health.transporters.online >= 1) break;
      await new Promise((r) => setTimeout(r, 3000));
    }
    expect(health).toMatchObject({ ok: true, postgres: { ok: true }, redis: { ok: true }, transporters: { online: 1, total: 1 } });
    // Plain HTTP on the same port only redirects.
    const plain = await fetch(`${url.replace('https:', 'http:')}/api/health`, { redirect: 'manual', signal: AbortSignal.timeout(20_000) });
    expect(plain.status).toBe(301);
    expect(plain.headers.get('location')).toBe(`${url}/api/health`);
    const page = await http(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<div id="root">/);
  }, 11 * MIN);

  it('signs in with the console password, which must be changed before anything else; the banner then drops it', async () => {
    const login = async (password: string) => http(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
    const r = await login(firstPassword);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ username: 'admin', role: 'admin', mustChangePassword: true });
    const pending = r.headers.get('set-cookie')!.split(';')[0]!;
    expect(pending).toMatch(/^__Host-vl_session=/);
    const blocked = await http(`${url}/api/jobs`, { headers: { cookie: pending } });
    expect(blocked.status).toBe(403);
    expect(await blocked.json()).toMatchObject({ code: 'password_change_required' });
    const changed = await http(`${url}/api/auth/change-password`, { method: 'POST', headers: { cookie: pending, 'content-type': 'application/json' }, body: JSON.stringify({ currentPassword: firstPassword, newPassword: 'appliance-test-password' }) });
    expect(changed.status).toBe(200);
    expect((await login(firstPassword)).status).toBe(401);
    const again = await login('appliance-test-password');
    expect(await again.json()).toMatchObject({ mustChangePassword: false });
    cookie = again.headers.get('set-cookie')!.split(';')[0]!;
    // The console prints the banner again, without the password.
    const before = vm!.text().lastIndexOf(firstPassword);
    const end = Date.now() + 2 * MIN;
    while (Date.now() < end && !BANNER_WITHOUT_PASSWORD.test(vm!.text().slice(before))) await new Promise((r) => setTimeout(r, 1000));
    expect(vm!.text().slice(before)).toMatch(BANNER_WITHOUT_PASSWORD);
  }, 3 * MIN);

  it('keeps the one-time password out of every log and file once changed; SSH takes the key only; services, tools and rights are in place', async () => {
    // The password was shown on the console only: not in the journal, logs, config or the app's files.
    expect(await ssh(`journalctl -o cat --no-pager | grep -cF '${firstPassword}' || true`)).toBe('0\n');
    expect(await ssh(`grep -rlF '${firstPassword}' /var/log /etc /root /opt/vaultline /var/lib/vaultline /run/vaultline 2>/dev/null || true`)).toBe('');
    expect(await ssh('test -e /var/lib/vaultline/first-login.txt && echo still-there || echo gone')).toBe('gone\n');
    expect(await ssh('systemctl is-active vaultline-director vaultline-flr vaultline-transporter postgresql@15-main redis-server')).toBe('active\nactive\nactive\nactive\nactive\n');
    expect(await ssh('systemctl --failed --no-legend --plain | wc -l')).toBe('0\n');
    // The Transporter waited for the Director's migrations: its first orphan sweep found the tables.
    // (The lines themselves, so that a failure says why the sweep failed.)
    expect(await ssh("journalctl -u vaultline-transporter -o cat --no-pager | grep 'orphan sweep failed' || true")).toBe('');
    expect(await ssh('stat -c %a /etc/vaultline/vaultline.env /var/lib/vaultline/secret.key')).toBe('600\n600\n');
    expect(await ssh("sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication|permitrootlogin) ' | sort")).toBe('kbdinteractiveauthentication no\npasswordauthentication no\npermitrootlogin without-password\n');
    // File-level restore's tools; the Transporter's disk tools.
    expect(await ssh('for t in nbdfuse fusermount3 ntfs-3g losetup mount blkid vmfs-fuse vmfs6-fuse qemu-img blockdev; do command -v $t >/dev/null || echo missing $t; done')).toBe('');
    // The Director runs as vaultline without any capability and owns the data directory (the key too);
    // the file-level restore helper is root with CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH only, in a mount
    // namespace of its own, and shares only its socket and token with the Director's group.
    const status = (unit: string) => ssh(`grep -E '^(Uid|CapEff):' /proc/$(systemctl show -p MainPID --value ${unit})/status`);
    expect(await status('vaultline-director')).toMatch(new RegExp(`^Uid:\\s+${(await ssh('id -u vaultline')).trim()}\\s[\\s\\S]*^CapEff:\\s+0000000000000000$`, 'm'));
    expect(await status('vaultline-flr')).toMatch(new RegExp(`^Uid:\\s+0\\s[\\s\\S]*^CapEff:\\s+${((1n << 21n) | (1n << 2n)).toString(16).padStart(16, '0')}$`, 'm'));
    expect(await ssh('stat -c %U /var/lib/vaultline/secret.key')).toBe('vaultline\n');
    expect(await ssh('stat -c "%a %U %G" /run/vaultline-flr/flr.sock /run/vaultline-flr/token')).toBe('660 root vaultline\n640 root vaultline\n');
    expect(await ssh('[ "$(readlink /proc/$(systemctl show -p MainPID --value vaultline-flr)/ns/mnt)" != "$(readlink /proc/$(systemctl show -p MainPID --value vaultline-director)/ns/mnt)" ] && echo private')).toBe('private\n');
    expect(await ssh('test -c /dev/fuse && test -c /dev/loop-control && echo yes')).toBe('yes\n');
    // The Transporter knows the VM it runs in by its BIOS UUID (HotAdd attaches disks to that VM).
    expect((await ssh('cat /sys/class/dmi/id/product_uuid')).trim().toLowerCase()).toBe(biosUuid);
    const transporters = (await http(`${url}/api/transporters`, { headers: { cookie } }).then((r) => r.json())) as { name: string; online: boolean; capabilities: { proxyVmUuid?: string; transports: string[] } }[];
    expect(transporters).toMatchObject([{ name: 'appliance', online: true, capabilities: { proxyVmUuid: biosUuid, transports: ['san', 'hotadd', 'nbdssl', 'nbd'] } }]);
    // The certificate the console showed is the one the Director made in its data dir (key 0600) and logged.
    expect((await ssh(`node -e 'process.stdout.write(new (require("node:crypto").X509Certificate)(require("node:fs").readFileSync("/var/lib/vaultline/tls/cert.pem")).fingerprint256)'`))).toBe(fingerprint);
    expect(await ssh('stat -c %a /var/lib/vaultline/tls/key.pem')).toBe('600\n');
    expect(await ssh(`journalctl -u vaultline-director -o cat --no-pager | grep -c 'TLS certificate SHA-256 ${fingerprint}' || true`)).not.toBe('0\n');
    // The CLI is on the PATH and talks to this appliance's Director (pinning the certificate in the data dir).
    expect(await ssh('VAULTLINE_PASSWORD=appliance-test-password vaultline health')).toMatch(/postgres/i);
    expect(await ssh('node --version')).toBe(`${process.version}\n`);
  }, 5 * MIN);

  it('backs up a VM of the lab vCenter (on the host, through the user-network gateway) into its own repository, over the network', async () => {
    const vcUrl = lab!.url.replace('127.0.0.1', '10.0.2.2');
    const out = await ssh(
      [
        'export VAULTLINE_PASSWORD=appliance-test-password',
        `vaultline vcenter add --name lab --url '${vcUrl}' --user '${lab!.username}' --password '${lab!.password}' --thumbprint '${lab!.thumbprintSha256}'`,
        "vaultline job create --name lab-backup --vcenter lab --repo 'Local repository' --vm app-01",
        'vaultline job run lab-backup --wait',
      ].join(' && '),
    );
    expect(out).toMatch(/^run \S+ +succeeded/m);
    expect(out).toMatch(/app-01: succeeded/);
    expect(out).toMatch(/Hard disk 1: done via nbdssl/);
    // HotAdd was considered with this VM's own BIOS UUID, which the lab's inventory does not hold.
    expect(out).toContain(`HotAdd: no VM with BIOS UUID ${biosUuid}`);
    expect(await ssh('VAULTLINE_PASSWORD=appliance-test-password vaultline repo list')).toMatch(/Local repository/);
    // File-level restore works as delivered: the Director opens a browse session on the new restore
    // point (its NBD server; the helper's nbdfuse and read-only loop device) and closes it again.
    const points = (await http(`${url}/api/restore-points?vm=app-01`, { headers: { cookie } }).then((r) => r.json())) as { id: string }[];
    expect(points).toHaveLength(1);
    const browse = await http(`${url}/api/restore-points/${points[0]!.id}/browse`, { method: 'POST', headers: { cookie } }, 3 * MIN);
    const body = (await browse.json()) as { session: string; disks: { key: string; partitionTable: string }[] };
    expect(browse.status, JSON.stringify(body)).toBe(201);
    expect(body.disks).toHaveLength(1);
    expect((await http(`${url}/api/restore-points/${points[0]!.id}/browse/${body.session}`, { method: 'DELETE', headers: { cookie } }, 3 * MIN)).status).toBe(204);
  }, 10 * MIN);

  it('powers off cleanly on the ACPI power button, leaving a clean filesystem', async () => {
    const code = await vm!.powerdown(5 * MIN);
    expect(code).toBe(0);
    expect(vm!.text()).toMatch(/reboot: Power down/);
    vm = undefined;
    // Read the root filesystem of the overlay offline.
    const raw = path.join(tmp, 'after.raw');
    await run('qemu-img', ['convert', '-O', 'raw', overlay, raw]);
    const loop = (await run('losetup', ['-r', '-f', '--show', '-o', String(ROOT_START * 512), raw])).stdout.trim();
    try {
      expect((await run('dumpe2fs', ['-h', loop])).stdout).toMatch(/Filesystem state:\s+clean/);
      const fsck = await run('e2fsck', ['-fn', loop], { allowFail: true });
      expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    } finally {
      await run('losetup', ['-d', loop], { allowFail: true });
      rmSync(raw, { force: true });
    }
  }, 10 * MIN);

  it('boots with UEFI firmware too (OVMF): GRUB\'s EFI image on the ESP starts the same system', async () => {
    const efi = await bootVm({
      disk: overlay,
      format: 'qcow2',
      accel: accel.accel,
      firmware: 'efi',
      forwards: {},
      serialFile: path.join(tmp, 'serial-efi.log'),
      monitorSocket: path.join(tmp, 'monitor-efi.sock'),
    });
    try {
      await efi.waitFor(BANNER_WITHOUT_PASSWORD, 10 * MIN, 'console banner after an EFI boot');
      expect(efi.text()).toContain(fingerprint.slice(0, 47));
      expect(await efi.powerdown(5 * MIN)).toBe(0);
    } finally {
      writeFileSync(path.join(os.tmpdir(), 'vaultline-ova-test-serial-efi.log'), efi.serial());
      await efi.kill();
    }
  }, 16 * MIN);
});
