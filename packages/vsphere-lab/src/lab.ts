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
 * Cleanup (stop(), `lab down`) does not trust bookkeeping: see host-resources.ts.
 *
 * Around it: types.ts (the public types), host-resources.ts (certificate, SAN
 * loop devices, processes, cleanup), ground-truth.ts (sha256File), state.ts
 * (what `lab up` records, reconnecting to it) and demo.ts (the demo inventory).
 */
import { X509Certificate } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { buildLabServer } from './build.ts';
import { createDemoInventory } from './demo.ts';
import { childEnv, isRoot, labEnv } from './env.ts';
import { sha256File } from './ground-truth.ts';
import { cleanupRunDir, ensureCert, sanSetup, sh, stopPid, sweepStaleLabs } from './host-resources.ts';
import { patternBytes } from './patterns.ts';
import { httpRequest, SoapClient, xmlEscape } from './soap.ts';
import type { Lab, LabDatastore, LabDisk, LabOptions, LabVm, LabVmSpec, WriteOp } from './types.ts';

export const PROXY_VM_NAME = 'vaultline-proxy';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

interface StartInternals {
  /** keep the server running after this process exits (CLI `up`) */
  detached?: boolean;
}

const controllerXml: Record<string, { key: number; xml: string }> = {
  pvscsi: { key: -100, xml: `<device xsi:type="ParaVirtualSCSIController"><key>-100</key><busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device>` },
  lsilogic: { key: -101, xml: `<device xsi:type="VirtualLsiLogicController"><key>-101</key><busNumber>1</busNumber><sharedBus>noSharing</sharedBus></device>` },
  sata: { key: -102, xml: `<device xsi:type="VirtualAHCIController"><key>-102</key><busNumber>0</busNumber></device>` },
};

export class LabImpl implements Lab {
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

  /**
   * Attaches the vSphere tag `category`/`tag` to the VM named `vmName` (or detaches it, `attach` false) through
   * vCenter's vAPI as an administrator would in the vSphere Client; the category (multiple tags per object) and
   * the tag are created when missing. Returns the tag's id.
   */
  async tagVm(category: string, tag: string, vmName: string, attach = true): Promise<string> {
    const vm = await this.getVm(vmName);
    const rest = async <T>(method: string, path: string, body?: unknown, session?: string): Promise<T> => {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (session) headers['vmware-api-session-id'] = session;
      else headers.authorization = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await httpRequest(`${this.baseUrl}/rest/com/vmware/cis${path}`, { method, headers, ca: this.certPem, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      if (res.status !== 200) throw new Error(`lab vAPI ${method} ${path}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
      const text = res.body.toString('utf8');
      return (text ? (JSON.parse(text) as { value: T }).value : undefined) as T;
    };
    const session = await rest<string>('POST', '/session');
    try {
      const categories = (await rest<string[] | undefined>('GET', '/tagging/category', undefined, session)) ?? [];
      let categoryId: string | undefined;
      for (const id of categories) if ((await rest<{ name: string }>('GET', `/tagging/category/id:${id}`, undefined, session)).name === category) categoryId = id;
      categoryId ??= await rest<string>('POST', '/tagging/category', { create_spec: { name: category, description: '', cardinality: 'MULTIPLE', associable_types: [] } }, session);
      const tags = (await rest<string[] | undefined>('POST', `/tagging/tag/id:${categoryId}?~action=list-tags-for-category`, {}, session)) ?? [];
      let tagId: string | undefined;
      for (const id of tags) if ((await rest<{ name: string }>('GET', `/tagging/tag/id:${id}`, undefined, session)).name === tag) tagId = id;
      tagId ??= await rest<string>('POST', '/tagging/tag', { create_spec: { name: tag, description: '', category_id: categoryId } }, session);
      await rest('POST', `/tagging/tag-association/id:${tagId}?~action=${attach ? 'attach' : 'detach'}`, { object_id: { id: vm.moref, type: 'VirtualMachine' } }, session);
      return tagId;
    } finally {
      await httpRequest(`${this.baseUrl}/rest/com/vmware/cis/session`, { method: 'DELETE', headers: { 'vmware-api-session-id': session }, ca: this.certPem }).catch(() => undefined);
    }
  }

  /** Publishes `dir` as the NFS export `remoteHost:remotePath` for CreateNasDatastore (null withdraws it). */
  async nasExport(remoteHost: string, remotePath: string, dir: string | null): Promise<void> {
    const qs = new URLSearchParams({ remoteHost, remotePath, ...(dir ? { dir } : {}) });
    const res = await httpRequest(`${this.baseUrl}/lab/nas-export?${qs}`, { method: dir ? 'POST' : 'DELETE', ca: this.certPem });
    if (res.status !== 200) throw new Error(`nas export: ${res.body.toString('utf8')}`);
  }

  /** Stops (or restarts) vCenter's vAPI endpoint (tags) while SOAP keeps answering: every /rest request gets 503. */
  async vapiDown(down: boolean): Promise<void> {
    await this.labGet('vapi-down', { down: down ? '1' : '0' });
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

/** Starts a lab. Without `dir`, everything lives in a temp dir removed by stop(). */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  return startLabWith(opts, {});
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
