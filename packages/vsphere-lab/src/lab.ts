/**
 * The lab harness: starts the lab vCenter (vcsim + overlay) on loopback HTTPS
 * with a stable self-signed certificate, creates its datastores (optionally on
 * ext4 images exposed as read-only "SAN LUN" loop devices), the proxy VM and
 * the demo inventory, and offers a guest writer and SHA-256 ground truth.
 *
 * Layout of a lab dir:
 *   tls/{cert.pem,key.pem}   kept across runs, so the thumbprint is stable
 *   run/                     everything of one run (the whole dir when it is a temp dir):
 *     ds/<name>/             datastore folders (mount points when san: true)
 *     san/<name>.img         ext4 images (san: true)
 *     by-id/                 wwn-0x<id> links to loop devices (HotAdd disks and SAN LUNs)
 *     server.json, server.log
 * Cleanup (stop(), `lab down`) does not trust bookkeeping: it detaches every
 * loop device whose backing file lies under run/, unmounts every mount under
 * run/ and removes run/.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { buildLabServer } from './build.ts';
import { childEnv, isRoot, labEnv } from './env.ts';
import { patternBytes } from './patterns.ts';
import { httpRequest, SoapClient, xmlEscape } from './soap.ts';

export interface LabOptions {
  dir?: string;
  port?: number /* 0 = free port */;
  demo?: boolean;
  cbtMaxAreas?: number;
  cbtBlockSize?: number;
  san?: boolean;
  hotadd?: boolean;
  /**
   * More datastores after datastore1/2, each a tmpfs of that size (root only):
   * the inventory reports its real capacity and free space, e.g. to try a
   * restore onto a datastore that is too small.
   */
  extraDatastores?: { name: string; sizeBytes: number }[];
  /**
   * Object datastores after those: vSAN-like (`type: 'vsan'`) or vVols-like (`'vvol'`). A disk there is an
   * object: its descriptor names `vsan://…` or `vvol://…`, `/folder` has no `-flat.vmdk` for it (GET and HEAD
   * answer 404, PUT is refused) and no LUN backs it; HotAdd, CBT and export leases work as on any datastore.
   */
  objectDatastores?: { name: string; type: 'vsan' | 'vvol' }[];
  /**
   * Be a standalone ESXi host (API type HostAgent, datacenter `ha-datacenter`, one host, no cluster and no
   * vCenter instance UUID) instead of a vCenter, as an ESXi registered directly is.
   */
  esx?: boolean;
  /**
   * Hosts a client can reach directly (root: binds port 443): each host gets a loopback address of its own
   * as its name, with an HTTPS /folder there that takes vCenter's generic service tickets (one per request,
   * for that URL only) and presents a certificate of its own, whose SHA-1 thumbprint the tickets name.
   */
  directHosts?: boolean;
  /** Serve plain HTTP instead of HTTPS (to try what a client does with an HTTP-only vCenter, e.g. NBD without SSL). */
  http?: boolean;
  username?: string;
  password?: string;
}
export interface LabDiskSpec {
  capacityBytes: number;
  thin?: boolean;
  controller?: 'pvscsi' | 'lsilogic' | 'ide' | 'sata';
  datastore?: string;
}
export interface LabVmSpec {
  name: string;
  disks: LabDiskSpec[];
  cbt?: boolean;
  powerOn?: boolean;
  cpus?: number;
  memoryMiB?: number;
  guestId?: string;
  /** One vmxnet3 NIC per entry, on the network of that name (e.g. "VM Network", "DC0_DVPG0"). */
  nics?: string[];
}
export interface LabDisk {
  key: number;
  label: string;
  controller: string;
  fileName: string /* "[ds] vm/vm.vmdk" */;
  flatPath: string /* current local file */;
  capacityBytes: number;
  uuid: string;
  /** backing.changeId ("" when CBT is off or no snapshot was taken yet) */
  changeId: string;
  /** parent chain of the current backing, newest first */
  parents: string[];
}
export interface LabVm {
  name: string;
  moref: string;
  biosUuid: string;
  instanceUuid: string;
  disks: LabDisk[];
  powerState: string;
  cbt: boolean;
}
export interface WriteOp {
  offset: number;
  length: number;
  pattern: 'zeros' | 'text' | 'random';
  seed?: number;
}
export interface LabDatastore {
  name: string;
  path: string;
  naa?: string;
  lunDevice?: string;
}
export interface Lab {
  url: string /* https://127.0.0.1:PORT/sdk */;
  username: string;
  password: string;
  thumbprintSha256: string /* "AB:CD:..." colon hex of the cert's DER */;
  thumbprintSha1: string;
  certPem: string;
  datacenter: string;
  dir: string;
  byIdDir: string;
  datastores: LabDatastore[];
  proxyVm: LabVm;
  /** pid of the server process */
  pid: number;
  createVm(spec: LabVmSpec): Promise<LabVm>;
  getVm(name: string): Promise<LabVm>; // current backings
  guestWrite(vmName: string, diskIndex: number, writes: WriteOp[]): Promise<void>; // writes real bytes + records change log
  diskSha256(vmName: string, diskIndex: number, opts?: { snapshot?: string /* moref */ }): Promise<string>;
  /** From now on, quiesced snapshots of this VM fail with ApplicationQuiesceFault (or succeed again). */
  failQuiesce(vmName: string, fail: boolean): Promise<void>;
  /** With `directHosts`: the host at `address` answers `answers` more /folder requests, then 503 (-1: all again). */
  directHostAnswers(address: string, answers: number): Promise<void>;
  /** A datastore's own host list loses (or regains) a host that still lists the datastore, as a lagging vCenter shows it. */
  listDatastoreHost(datastore: string, hostMoref: string, listed: boolean): Promise<void>;
  /** A logged-in SOAP session (the lab's private helper client). */
  soap(): Promise<SoapClient>;
  stop(): Promise<void>;
}

export const PROXY_VM_NAME = 'vaultline-proxy';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: childEnv() });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  return r.stdout.trim();
}

/** A self-signed certificate for 127.0.0.1/localhost, made once per lab dir. */
export function ensureCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    fs.mkdirSync(dir, { recursive: true });
    sh('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
      '-keyout', key, '-out', cert, '-subj', '/O=Vaultline lab/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
    fs.chmodSync(key, 0o600);
  }
  return { cert, key, pem: fs.readFileSync(cert, 'utf8') };
}

// ---------------------------------------------------------------------------
// Cleanup of a run dir (also used by `lab down`)

function loopDevices(): { name: string; backFile: string }[] {
  const r = spawnSync('losetup', ['-J', '-l'], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return [];
  const j = JSON.parse(r.stdout) as { loopdevices?: { name: string; 'back-file'?: string }[] };
  return (j.loopdevices ?? []).map((d) => ({ name: d.name, backFile: (d['back-file'] ?? '').replace(/ \(deleted\)$/, '') }));
}

function under(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Loop devices whose backing file lies under `dir`. */
export function loopDevicesUnder(dir: string): string[] {
  const real = fs.existsSync(dir) ? fs.realpathSync(dir) : dir;
  return loopDevices()
    .filter((d) => under(d.backFile, dir) || under(d.backFile, real))
    .map((d) => d.name);
}

/** Mount points under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const real = fs.existsSync(dir) ? fs.realpathSync(dir) : dir;
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m && (under(m, dir) || under(m, real)))
    .sort((a, b) => b.length - a.length);
}

/** Detaches loop devices, unmounts and removes `run` (nothing is left behind). */
export function cleanupRunDir(run: string, removeDir = true): void {
  if (!fs.existsSync(run)) return;
  const detach = () => {
    for (const dev of loopDevicesUnder(run)) {
      spawnSync('losetup', ['-d', dev]);
      // `losetup -r` leaves the device's read-only flag set after detach: clear it for the next user.
      spawnSync('blockdev', ['--setrw', dev]);
    }
  };
  detach(); // HotAdd devices first: they keep files on the datastore filesystems busy
  for (const m of mountsUnder(run)) {
    if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  }
  detach(); // the SAN image devices, now unmounted
  if (removeDir) fs.rmSync(run, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function stopPid(pid: number, timeoutMs = 8000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!pidAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}


interface StartInternals {
  /** keep the server running after this process exits (CLI `up`) */
  detached?: boolean;
}

function sanSetup(run: string, byId: string, name: string, dsPath: string): { naa: string; lunDevice: string } {
  const img = path.join(run, 'san', `${name}.img`);
  fs.mkdirSync(path.dirname(img), { recursive: true });
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, 256 * GiB); // sparse; large enough that thin demo disks never exceed the free space
  sh('mkfs.ext4', ['-q', '-F', '-N', '4096', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', name.slice(0, 16), img]);
  const rw = sh('losetup', ['-f', '--show', img]);
  // A read-only flag set on this loop device by an earlier user (BLKROSET) outlives
  // its detach; the datastore must be writable.
  sh('blockdev', ['--setrw', rw]);
  sh('mount', ['-t', 'ext4', rw, dsPath]);
  const lun = sh('losetup', ['-f', '--show', '-r', img]);
  const hex = `6000c29${createHash('sha256').update(`${run}/${name}`).digest('hex').slice(0, 25)}`;
  fs.symlinkSync(lun, path.join(byId, `wwn-0x${hex}`));
  fs.symlinkSync(lun, path.join(byId, `scsi-3${hex}`));
  return { naa: `naa.${hex}`, lunDevice: lun };
}

const controllerXml: Record<string, { key: number; xml: string }> = {
  pvscsi: { key: -100, xml: `<device xsi:type="ParaVirtualSCSIController"><key>-100</key><busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device>` },
  lsilogic: { key: -101, xml: `<device xsi:type="VirtualLsiLogicController"><key>-101</key><busNumber>1</busNumber><sharedBus>noSharing</sharedBus></device>` },
  sata: { key: -102, xml: `<device xsi:type="VirtualAHCIController"><key>-102</key><busNumber>0</busNumber></device>` },
};

class LabImpl implements Lab {
  url = '';
  username: string;
  password: string;
  thumbprintSha256 = '';
  thumbprintSha1 = '';
  certPem = '';
  datacenter = '';
  dir: string;
  byIdDir: string;
  datastores: LabDatastore[] = [];
  proxyVm!: LabVm;
  pid = 0;
  run: string;
  temp: boolean;
  child: ChildProcess | undefined;
  private inventory: { vmFolder: string; resourcePool: string; hosts: string[] } | undefined;
  private session: SoapClient | undefined;
  private vmCount = 0; // spreads new VMs over the cluster's hosts
  private stopped = false;
  private readonly onExit = () => {
    if (this.child && !this.stopped) this.child.kill('SIGKILL');
  };

  constructor(
    readonly opts: LabOptions,
    dir: string,
    temp: boolean,
  ) {
    this.dir = dir;
    this.temp = temp;
    this.run = temp ? dir : path.join(dir, 'run');
    this.byIdDir = path.join(this.run, 'by-id');
    this.username = opts.username ?? 'administrator@vsphere.local';
    this.password = opts.password ?? 'Vaultline-lab-1!';
  }

  get baseUrl(): string {
    return this.url.replace(/\/sdk$/, '');
  }

  async start(internals: StartInternals): Promise<void> {
    const bin = await buildLabServer();
    if (!this.temp) cleanupRunDir(this.run); // leftovers of a crashed run
    fs.mkdirSync(this.byIdDir, { recursive: true });
    const tls = ensureCert(path.join(this.dir, 'tls'));
    this.certPem = tls.pem;
    const x509 = new X509Certificate(tls.pem);
    this.thumbprintSha256 = x509.fingerprint256;
    this.thumbprintSha1 = x509.fingerprint;

    // HotAdd quietly stays off without root; SAN cannot work at all without it.
    if (this.opts.san && !isRoot()) throw new Error('san: true needs root (losetup, mkfs.ext4, mount)');
    if (this.opts.directHosts && !isRoot()) throw new Error('directHosts: true needs root (each host listens on port 443 of a loopback address)');
    const dsArgs: string[] = [];
    for (const name of ['datastore1', 'datastore2']) {
      const dsPath = path.join(this.run, 'ds', name);
      fs.mkdirSync(dsPath, { recursive: true });
      const ds: LabDatastore = { name, path: dsPath };
      if (this.opts.san) Object.assign(ds, sanSetup(this.run, this.byIdDir, name, dsPath));
      this.datastores.push(ds);
      // datastore1 is VMFS6-like (seSparse snapshot links), datastore2 VMFS5-like (vmfsSparse links).
      dsArgs.push('-ds', `${name}=${dsPath}${ds.naa ? `,naa=${ds.naa}` : ''}${name === 'datastore2' ? ',delta=vmfsSparse' : ''}`);
    }
    for (const extra of this.opts.extraDatastores ?? []) {
      if (!isRoot()) throw new Error(`extra datastore ${extra.name} needs root (it is a tmpfs mount)`);
      if (!/^[A-Za-z0-9_-]{1,40}$/.test(extra.name) || this.datastores.some((d) => d.name === extra.name)) throw new Error(`bad or duplicate datastore name ${extra.name}`);
      const dsPath = path.join(this.run, 'ds', extra.name);
      fs.mkdirSync(dsPath, { recursive: true });
      // Removed with the run folder: cleanupRunDir unmounts everything under it.
      sh('mount', ['-t', 'tmpfs', '-o', `size=${Math.max(4096, Math.floor(extra.sizeBytes))}`, `vaultline-lab-${extra.name}`, dsPath]);
      this.datastores.push({ name: extra.name, path: dsPath });
      dsArgs.push('-ds', `${extra.name}=${dsPath}`);
    }
    for (const object of this.opts.objectDatastores ?? []) {
      if (!/^[A-Za-z0-9_-]{1,40}$/.test(object.name) || this.datastores.some((d) => d.name === object.name)) throw new Error(`bad or duplicate datastore name ${object.name}`);
      if (object.type !== 'vsan' && object.type !== 'vvol') throw new Error(`datastore ${object.name}: type must be vsan or vvol`);
      const dsPath = path.join(this.run, 'ds', object.name);
      fs.mkdirSync(dsPath, { recursive: true });
      this.datastores.push({ name: object.name, path: dsPath });
      dsArgs.push('-ds', `${object.name}=${dsPath},type=${object.type}`);
    }

    fs.writeFileSync(path.join(this.run, 'owner.json'), JSON.stringify({ owner: process.pid, detached: !!internals.detached }));
    const envFile = path.join(this.run, 'server.json');
    const log = fs.openSync(path.join(this.run, 'server.log'), 'a');
    const args = [
      '-l', `127.0.0.1:${this.opts.port ?? 0}`,
      ...(this.opts.http ? [] : ['-cert', tls.cert, '-key', tls.key]),
      '-user', `${this.username}:${this.password}`,
      '-env', envFile, '-proxy', PROXY_VM_NAME,
      ...(this.opts.esx ? ['-esx'] : []),
      ...(this.opts.directHosts ? ['-direct-hosts'] : []),
      ...(this.opts.hotadd !== false && isRoot() ? ['-byid', this.byIdDir] : []),
      ...dsArgs,
    ];
    const env: Record<string, string> = {};
    if (this.opts.cbtMaxAreas) env.VCSIM_CBT_MAX_AREAS = String(this.opts.cbtMaxAreas);
    if (this.opts.cbtBlockSize) env.VCSIM_CBT_BLOCK = String(this.opts.cbtBlockSize);
    const child = spawn(bin, args, {
      env: childEnv(env),
      stdio: ['ignore', labEnv.verbose ? 'inherit' : log, labEnv.verbose ? 'inherit' : log],
      detached: internals.detached ?? false,
      cwd: this.run,
    });
    fs.closeSync(log);
    this.child = child;
    if (internals.detached) child.unref();
    else process.once('exit', this.onExit);
    let exited: number | null = null;
    child.once('exit', (code) => (exited = code ?? -1));

    const until = Date.now() + 20_000;
    for (;;) {
      if (fs.existsSync(envFile)) break;
      if (exited !== null || Date.now() > until) {
        const tail = fs.existsSync(path.join(this.run, 'server.log'))
          ? fs.readFileSync(path.join(this.run, 'server.log'), 'utf8').slice(-3000)
          : '';
        await this.stop();
        throw new Error(`lab server did not start (exit ${exited}):\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const info = JSON.parse(fs.readFileSync(envFile, 'utf8')) as { url: string; pid: number };
    this.url = info.url;
    this.pid = info.pid;
    const inv = await this.labGet<{ datacenter: string; vmFolder: string; resourcePool: string; hosts: string[] }>('inventory');
    this.datacenter = inv.datacenter;
    this.inventory = inv;
    this.proxyVm = await this.createVm({
      name: PROXY_VM_NAME,
      disks: [{ capacityBytes: 16 * GiB, controller: 'pvscsi' }],
      powerOn: true,
      cbt: false,
      guestId: 'debian10_64Guest',
      cpus: 2,
      memoryMiB: 4096,
    });
    if (this.opts.demo) await createDemoInventory(this);
  }

  private keepAlive: http.Agent | undefined;

  /** A keep-alive agent for bulk guest writes (one TLS handshake, not one per chunk). */
  agent(): http.Agent {
    return (this.keepAlive ??= this.url.startsWith('http:') ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : new https.Agent({ keepAlive: true, maxSockets: 1, ca: this.certPem }));
  }

  async labGet<T>(endpoint: string, query: Record<string, string> = {}): Promise<T> {
    const qs = new URLSearchParams(query).toString();
    const res = await httpRequest(`${this.baseUrl}/lab/${endpoint}${qs ? `?${qs}` : ''}`, { ca: this.certPem });
    const body = JSON.parse(res.body.toString('utf8')) as T & { error?: string };
    if (res.status !== 200) throw new Error(`lab ${endpoint}: ${body.error ?? res.status}`);
    return body;
  }

  async soap(): Promise<SoapClient> {
    if (!this.session) {
      const s = new SoapClient(this.url, this.certPem);
      await s.login(this.username, this.password);
      this.session = s;
    }
    return this.session;
  }

  async createVm(spec: LabVmSpec): Promise<LabVm> {
    const inv = (this.inventory ??= await this.labGet<{ vmFolder: string; resourcePool: string; hosts: string[] }>('inventory'));
    const soap = await this.soap();
    const vmDs = spec.disks[0]?.datastore ?? this.datastores[0]!.name;
    const used = new Set(spec.disks.map((d) => d.controller ?? 'pvscsi'));
    const changes: string[] = [];
    for (const c of ['pvscsi', 'lsilogic', 'sata'] as const) {
      if (used.has(c)) changes.push(`<deviceChange><operation>add</operation>${controllerXml[c]!.xml}</deviceChange>`);
    }
    const nextUnit: Record<string, number> = {};
    spec.disks.forEach((d, i) => {
      const ctl = d.controller ?? 'pvscsi';
      let controllerKey: number;
      let unit = nextUnit[ctl] ?? 0;
      if (ctl === 'ide') {
        controllerKey = 200 + Math.floor(unit / 2);
        nextUnit[ctl] = unit + 1;
        unit = unit % 2;
      } else {
        if (unit === 7 && ctl !== 'sata') unit++;
        controllerKey = controllerXml[ctl]!.key;
        nextUnit[ctl] = unit + 1;
      }
      const thin = d.thin ?? true;
      changes.push(
        `<deviceChange><operation>add</operation><fileOperation>create</fileOperation>` +
          `<device xsi:type="VirtualDisk"><key>${-1000 - i}</key>` +
          `<deviceInfo><label>Hard disk ${i + 1}</label><summary>${Math.round(d.capacityBytes / 1024)} KB</summary></deviceInfo>` +
          `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[${xmlEscape(d.datastore ?? vmDs)}]</fileName>` +
          `<diskMode>persistent</diskMode><thinProvisioned>${thin}</thinProvisioned></backing>` +
          `<controllerKey>${controllerKey}</controllerKey><unitNumber>${unit}</unitNumber>` +
          `<capacityInKB>${Math.floor(d.capacityBytes / 1024)}</capacityInKB><capacityInBytes>${d.capacityBytes}</capacityInBytes>` +
          `</device></deviceChange>`,
      );
    });
    if (spec.nics?.length) {
      // vcsim looks the network up by name and does not survive a missing one.
      const { networks } = await this.labGet<{ networks: string[] }>('inventory');
      for (const n of spec.nics) if (!networks.includes(n)) throw new Error(`the lab has no network ${n} (it has ${networks.join(', ')})`);
    }
    (spec.nics ?? []).forEach((net, i) => {
      changes.push(
        `<deviceChange><operation>add</operation><device xsi:type="VirtualVmxnet3"><key>${-3000 - i}</key>` +
          `<backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>${xmlEscape(net)}</deviceName></backing>` +
          `<addressType>generated</addressType></device></deviceChange>`,
      );
    });
    await soap.task(
      `<CreateVM_Task><_this type="Folder">${inv.vmFolder}</_this><config>` +
        `<name>${xmlEscape(spec.name)}</name><guestId>${spec.guestId ?? 'debian10_64Guest'}</guestId>` +
        `<files><vmPathName>[${xmlEscape(vmDs)}]</vmPathName></files>` +
        `<numCPUs>${spec.cpus ?? 1}</numCPUs><memoryMB>${spec.memoryMiB ?? 1024}</memoryMB>` +
        changes.join('') +
        `<changeTrackingEnabled>${spec.cbt ?? true}</changeTrackingEnabled>` +
        `</config><pool type="ResourcePool">${inv.resourcePool}</pool>` +
        `<host type="HostSystem">${inv.hosts[this.vmCount++ % inv.hosts.length]}</host></CreateVM_Task>`,
    );
    const vm = await this.getVm(spec.name);
    if (spec.powerOn) {
      await soap.task(`<PowerOnVM_Task><_this type="VirtualMachine">${vm.moref}</_this></PowerOnVM_Task>`);
      vm.powerState = 'poweredOn';
    }
    return vm;
  }

  async getVm(name: string): Promise<LabVm> {
    const vm = await this.labGet<LabVm>('vm', { name });
    return {
      name: vm.name,
      moref: vm.moref,
      biosUuid: vm.biosUuid,
      instanceUuid: vm.instanceUuid,
      powerState: vm.powerState,
      cbt: vm.cbt,
      disks: vm.disks.map((d) => ({
        key: d.key,
        label: d.label,
        controller: d.controller,
        fileName: d.fileName,
        flatPath: d.flatPath,
        capacityBytes: d.capacityBytes,
        uuid: d.uuid,
        changeId: d.changeId,
        parents: d.parents ?? [],
      })),
    };
  }

  async guestWrite(vmName: string, diskIndex: number, writes: WriteOp[]): Promise<void> {
    const vm = await this.getVm(vmName);
    const disk = vm.disks[diskIndex];
    if (!disk) throw new Error(`${vmName} has no disk ${diskIndex}`);
    const chunk = 8 * MiB;
    for (const w of writes) {
      for (let done = 0; done < w.length; done += chunk) {
        const n = Math.min(chunk, w.length - done);
        const data = patternBytes(w.pattern, n, w.seed ?? 1, w.offset + done);
        const qs = new URLSearchParams({ vm: vm.moref, key: String(disk.key), offset: String(w.offset + done) });
        const res = await httpRequest(`${this.baseUrl}/lab/guest-write?${qs}`, {
          method: 'POST',
          agent: this.agent(),
          body: data,
          ca: this.certPem,
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
        });
        if (res.status !== 200) throw new Error(`guest write failed: ${res.body.toString('utf8')}`);
      }
    }
  }

  /**
   * Takes a host out of (or back into) a datastore's own host list while the host still lists the datastore,
   * as a vCenter whose views lag shows it (the datastore stays mounted there; only the list is incomplete).
   */
  async listDatastoreHost(datastore: string, hostMoref: string, listed: boolean): Promise<void> {
    await this.labGet('datastore-host', { ds: datastore, host: hostMoref, listed: listed ? '1' : '0' });
  }

  async failQuiesce(vmName: string, fail: boolean): Promise<void> {
    const vm = await this.getVm(vmName);
    await this.labGet('quiesce-fail', { vm: vm.moref, fail: fail ? '1' : '0' });
  }

  async directHostAnswers(address: string, answers: number): Promise<void> {
    await this.labGet('direct-host', { host: address, answers: String(answers) });
  }

  async diskSha256(vmName: string, diskIndex: number, opts: { snapshot?: string } = {}): Promise<string> {
    let disks: LabDisk[];
    if (opts.snapshot) disks = (await this.labGet<{ disks: LabDisk[] }>('snapshot', { snapshot: opts.snapshot })).disks;
    else disks = (await this.getVm(vmName)).disks;
    const disk = disks[diskIndex];
    if (!disk) throw new Error(`${vmName} has no disk ${diskIndex}`);
    const extents = await this.labGet<[number, number][]>('extents', { path: disk.flatPath, length: String(disk.capacityBytes) });
    return sha256File(disk.flatPath, disk.capacityBytes, extents);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener('exit', this.onExit);
    this.keepAlive?.destroy();
    if (this.pid) await stopPid(this.pid);
    else if (this.child?.pid) await stopPid(this.child.pid);
    cleanupRunDir(this.run);
    if (this.temp) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What `lab up` records in .vaultline/lab/state.json (enough to reconnect and to clean up). */
export interface LabState {
  url: string;
  username: string;
  password: string;
  thumbprintSha256: string;
  thumbprintSha1: string;
  certFile: string;
  datacenter: string;
  dir: string;
  run: string;
  byIdDir: string;
  datastores: LabDatastore[];
  proxyVm: LabVm;
  pid: number;
}

export function labState(lab: Lab): LabState {
  const impl = lab as LabImpl;
  return {
    url: lab.url,
    username: lab.username,
    password: lab.password,
    thumbprintSha256: lab.thumbprintSha256,
    thumbprintSha1: lab.thumbprintSha1,
    certFile: path.join(lab.dir, 'tls', 'cert.pem'),
    datacenter: lab.datacenter,
    dir: lab.dir,
    run: impl.run,
    byIdDir: lab.byIdDir,
    datastores: lab.datastores,
    proxyVm: lab.proxyVm,
    pid: lab.pid,
  };
}

/** A Lab handle for a server started earlier (e.g. by `lab up`). stop() stops it and cleans up. */
export function connectLab(state: LabState): Lab {
  const lab = new LabImpl({ username: state.username, password: state.password }, state.dir, false);
  lab.run = state.run;
  lab.url = state.url;
  lab.pid = state.pid;
  lab.certPem = fs.readFileSync(state.certFile, 'utf8');
  lab.thumbprintSha256 = state.thumbprintSha256;
  lab.thumbprintSha1 = state.thumbprintSha1;
  lab.datacenter = state.datacenter;
  lab.byIdDir = state.byIdDir;
  lab.datastores = state.datastores;
  lab.proxyVm = state.proxyVm;
  return lab;
}

const zeros = Buffer.alloc(4 * MiB);

/**
 * SHA-256 of the first `length` bytes of a file (zero-padded if shorter).
 * With `extents` (the file's data extents, [offset, length][]), holes are
 * hashed as zeros without being read, which makes multi-GiB sparse disks cheap.
 */
export async function sha256File(file: string, length: number, extents?: [number, number][]): Promise<string> {
  const h = createHash('sha256');
  const fd = await fs.promises.open(file, 'r');
  const hashZeros = (n: number) => {
    for (let done = 0; done < n; done += zeros.length) h.update(zeros.subarray(0, Math.min(zeros.length, n - done)));
  };
  try {
    const buf = Buffer.alloc(4 * MiB);
    const readRange = async (pos: number, end: number) => {
      while (pos < end) {
        const n = Math.min(buf.length, end - pos);
        const { bytesRead } = await fd.read(buf, 0, n, pos);
        if (bytesRead === 0) {
          hashZeros(end - pos); // past the end of the file
          return;
        }
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
    };
    if (extents) {
      let pos = 0;
      for (const [off, len] of extents) {
        const start = Math.max(off, pos);
        const end = Math.min(off + len, length);
        if (end <= start) continue;
        hashZeros(start - pos);
        await readRange(start, end);
        pos = end;
      }
      hashZeros(length - pos);
      return h.digest('hex');
    }
    await readRange(0, length);
  } finally {
    await fd.close();
  }
  return h.digest('hex');
}

/** Starts a lab. Without `dir`, everything lives in a temp dir removed by stop(). */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  return startLabWith(opts, {});
}

/**
 * Removes temp labs whose owning process died without stop() (e.g. a killed
 * test worker): stops their server, detaches loop devices, unmounts, deletes.
 */
export async function sweepStaleLabs(): Promise<void> {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    if (!name.startsWith('vaultline-lab-')) continue;
    const dir = path.join(tmp, name);
    let owner: { owner: number; detached: boolean };
    try {
      owner = JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as typeof owner;
    } catch {
      continue;
    }
    if (owner.detached || pidAlive(owner.owner)) continue;
    try {
      const { pid } = JSON.parse(fs.readFileSync(path.join(dir, 'server.json'), 'utf8')) as { pid: number };
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('vcsim-lab') && cmd.includes(dir)) await stopPid(pid);
    } catch {
      /* no server left */
    }
    cleanupRunDir(dir);
  }
}

export async function startLabWith(opts: LabOptions, internals: StartInternals): Promise<LabImpl> {
  await sweepStaleLabs();
  const temp = !opts.dir;
  const dir = opts.dir ? path.resolve(opts.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-lab-'));
  fs.mkdirSync(dir, { recursive: true });
  const lab = new LabImpl(opts, dir, temp);
  try {
    await lab.start(internals);
  } catch (e) {
    await lab.stop();
    throw e;
  }
  return lab;
}

// ---------------------------------------------------------------------------
// Demo inventory

interface DemoVm extends LabVmSpec {
  data: WriteOp[][];
}

function demoData(seed: number, capacity: number): WriteOp[] {
  // boot area + filesystem-ish metadata (text), a block of binary data, zeros, scattered small writes
  const ops: WriteOp[] = [
    { offset: 0, length: 1 * MiB, pattern: 'text', seed },
    { offset: 64 * MiB, length: 6 * MiB, pattern: 'random', seed },
    { offset: Math.floor(capacity / 3 / MiB) * MiB, length: 2 * MiB, pattern: 'text', seed: seed + 1 },
    { offset: Math.floor(capacity / 2 / MiB) * MiB, length: 1 * MiB, pattern: 'zeros' },
  ];
  for (let i = 0; i < 6; i++) {
    ops.push({ offset: (Math.floor((capacity * (i + 1)) / 8 / MiB) + 3) * MiB + i * 4096, length: 256 * 1024, pattern: 'random', seed: seed * 10 + i });
  }
  return ops;
}

export async function createDemoInventory(lab: Lab): Promise<void> {
  const ds = lab.datastores.map((d) => d.name);
  const vms: DemoVm[] = [
    { name: 'web-01', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 4 * GiB }], data: [] },
    { name: 'web-02', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 4 * GiB }], data: [] },
    { name: 'db-01', guestId: 'centos7_64Guest', cpus: 4, memoryMiB: 8192, disks: [{ capacityBytes: 8 * GiB }, { capacityBytes: 16 * GiB, datastore: ds[1] }, { capacityBytes: 4 * GiB, datastore: ds[1] }], data: [] },
    { name: 'app-01', guestId: 'debian10_64Guest', disks: [{ capacityBytes: 6 * GiB }], data: [] },
    { name: 'app-02', guestId: 'debian10_64Guest', disks: [{ capacityBytes: 6 * GiB, datastore: ds[1] }, { capacityBytes: 2 * GiB, thin: false, controller: 'lsilogic', datastore: ds[1] }], data: [] },
    { name: 'file-01', guestId: 'windows9Server64Guest', cpus: 2, memoryMiB: 4096, disks: [{ capacityBytes: 8 * GiB, controller: 'sata' }, { capacityBytes: 12 * GiB, controller: 'sata' }], data: [] },
    { name: 'dc-01', guestId: 'windows9Server64Guest', disks: [{ capacityBytes: 8 * GiB, controller: 'lsilogic' }], data: [] },
    { name: 'mail-01', guestId: 'ubuntu64Guest', disks: [{ capacityBytes: 6 * GiB, datastore: ds[1] }, { capacityBytes: 8 * GiB, datastore: ds[1] }], data: [] },
    { name: 'legacy-ide-01', guestId: 'centos7_64Guest', disks: [{ capacityBytes: 4 * GiB, controller: 'ide' }], data: [] },
    { name: 'test-nocbt-01', guestId: 'debian10_64Guest', cbt: false, powerOn: false, disks: [{ capacityBytes: 4 * GiB }, { capacityBytes: 2 * GiB }], data: [] },
  ];
  let seed = 100;
  for (const spec of vms) {
    await lab.createVm({ powerOn: true, cbt: true, ...spec });
    for (let i = 0; i < spec.disks.length; i++) {
      await lab.guestWrite(spec.name, i, demoData(seed++, spec.disks[i]!.capacityBytes));
    }
  }
}
