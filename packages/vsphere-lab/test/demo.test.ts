import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_DISK, ensureDemoDiskTools, ext4Tree, ntfsTree } from '../src/demo-disk.ts';
import { startLab, type Lab } from '../src/index.ts';
import { httpRequest } from '../src/soap.ts';
import { MiB } from './helpers.ts';

let lab: Lab;
let startMs = 0;
let work = '';

beforeAll(async () => {
  ensureDemoDiskTools(); // installs ntfs-3g (its readers are used below) as root, else fails saying what to install
  const t = Date.now();
  lab = await startLab({ demo: true });
  startMs = Date.now() - t;
});
afterAll(async () => {
  await lab?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const demoNames = ['web-01', 'web-02', 'db-01', 'app-01', 'app-02', 'file-01', 'dc-01', 'mail-01', 'legacy-ide-01', 'test-nocbt-01'];

function allocatedBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).blocks * 512;
  }
  return n;
}

describe('demo inventory', () => {
  it('has a cluster of 2 hosts, 2 datastores, 10 VMs with 1-3 disks, an IDE disk, a VM with CBT off and the proxy VM', async () => {
    const inv = JSON.parse((await httpRequest(`${new URL(lab.url).origin}/lab/inventory`, { ca: lab.certPem })).body.toString()) as {
      hosts: string[];
      datastores: Record<string, string>;
      clusterName: string;
    };
    expect(inv.hosts).toHaveLength(2);
    expect(Object.keys(inv.datastores).sort()).toEqual(['datastore1', 'datastore2']);
    const vms = await Promise.all(demoNames.map((n) => lab.getVm(n)));
    for (const vm of vms) {
      expect(vm.disks.length).toBeGreaterThanOrEqual(1);
      expect(vm.disks.length).toBeLessThanOrEqual(3);
    }
    expect(vms.some((vm) => vm.disks.some((d) => d.controller === 'ide'))).toBe(true);
    expect(vms.filter((vm) => !vm.cbt).map((vm) => vm.name)).toEqual(['test-nocbt-01']);
    expect(lab.proxyVm.name).toBe('vaultline-proxy');
    expect(lab.proxyVm.powerState).toBe('poweredOn');
  });

  it('holds a few hundred MiB of real data in sparse multi-GiB disks and started within a few seconds', async () => {
    const used = lab.datastores.reduce((n, ds) => n + allocatedBytes(ds.path), 0);
    expect(used).toBeGreaterThan(150 * MiB);
    expect(used).toBeLessThan(600 * MiB);
    const web = await lab.getVm('web-01');
    expect(web.disks[0]!.capacityBytes).toBe(8 * 1024 * MiB);
    expect(fs.statSync(web.disks[0]!.flatPath).size).toBe(8 * 1024 * MiB);
    expect(startMs).toBeLessThan(20_000); // typically ~5 s; generous for a loaded CI machine
  });

  it('tags its VMs Backup tier/Gold and Backup tier/Silver in vCenter\'s vAPI, so a job can be tried on a tag', async () => {
    const api = async (method: string, p: string, body?: unknown, session?: string) => {
      const headers: Record<string, string> = session ? { 'vmware-api-session-id': session } : { authorization: `Basic ${Buffer.from(`${lab.username}:${lab.password}`).toString('base64')}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await httpRequest(`${new URL(lab.url).origin}/rest/com/vmware/cis${p}`, { method, headers, ca: lab.certPem, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      expect(res.status, res.body.toString()).toBe(200);
      return JSON.parse(res.body.toString()).value;
    };
    const session = (await api('POST', '/session')) as string;
    const ids = (await api('GET', '/tagging/tag', undefined, session)) as string[];
    const tags = await Promise.all(ids.map(async (id) => ({ id, name: ((await api('GET', `/tagging/tag/id:${id}`, undefined, session)) as { name: string }).name })));
    const attached = (await api('POST', '/tagging/tag-association?~action=list-attached-objects-on-tags', { tag_ids: ids }, session)) as Array<{ tag_id: string; object_ids: Array<{ id: string }> }>;
    const names = new Map((await Promise.all(demoNames.map((n) => lab.getVm(n)))).map((vm) => [vm.moref, vm.name]));
    const holding = (tag: string) => attached.find((a) => a.tag_id === tags.find((t) => t.name === tag)!.id)!.object_ids.map((o) => names.get(o.id)).sort();
    expect(tags.map((t) => t.name).sort()).toEqual(['Gold', 'Silver']);
    expect(holding('Gold')).toEqual(['db-01', 'file-01', 'mail-01']);
    expect(holding('Silver')).toEqual(['app-01', 'app-02', 'web-01', 'web-02']);
  });
});

/** Runs a system tool (util-linux, e2fsprogs, ntfs-3g), failing with its stderr. */
function tool(cmd: string, args: string[]): Buffer {
  const r = spawnSync(cmd, args, { maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString() || String(r.error)}`);
  return r.stdout;
}

describe('demo disk with real filesystems (file-01, Hard disk 1)', () => {
  const { ntfs, ext4 } = DEMO_DISK;
  const flat = async () => (await lab.getVm(DEMO_DISK.vm)).disks[DEMO_DISK.diskIndex]!.flatPath;

  it('holds an MBR with an active NTFS partition and an ext4 partition (util-linux reads them), sparse, written through the guest writer', async () => {
    const file = await flat();
    const table = tool('partx', ['--raw', '--bytes', '--noheadings', '-o', 'NR,START,SECTORS,TYPE,FLAGS,SCHEME', file]).toString().trim().split('\n');
    expect(table).toEqual(['1 2048 10483712 0x7 0x80 dos', '2 10485760 6291456 0x83 0x0 dos']);
    const probe = (offset: number) => Object.fromEntries(tool('blkid', ['-p', '-O', String(offset), '-o', 'export', file]).toString().trim().split('\n').map((l) => l.split('=', 2)));
    expect(probe(ntfs.start)).toMatchObject({ TYPE: 'ntfs', LABEL: 'FILES' });
    expect(probe(ext4.start)).toMatchObject({ TYPE: 'ext4', LABEL: 'demo-linux' });
    // Only the used parts were written: an 8 GiB disk holding a few tens of MiB.
    const st = fs.statSync(file);
    expect(st.size).toBe(8 * 1024 * MiB);
    expect(st.blocks * 512).toBeGreaterThan(8 * MiB);
    expect(st.blocks * 512).toBeLessThan(64 * MiB);
    // Through the guest writer: CBT's change log holds the MBR's write and one covering the ext4 superblock.
    const log = fs.readFileSync(path.join(path.dirname(file), `${DEMO_DISK.vm}-ctk.log`), 'utf8').split('\n');
    expect(log).toContain('0 512');
    const writes = log.filter((l) => /^\d+ \d+$/.test(l)).map((l) => l.split(' ').map(Number) as [number, number]);
    expect(writes.some(([off, len]) => off <= ext4.start + 1024 && ext4.start + 2048 <= off + len)).toBe(true);
  });

  it('has a consistent ext4 partition with its folders and files, byte for byte (e2fsck, debugfs at the partition\'s offset)', async () => {
    const fsArg = `${await flat()}?offset=${ext4.start}`;
    expect(tool('e2fsck', ['-f', '-n', fsArg]).toString()).toContain('demo-linux: '); // consistent (exit 0), nothing written
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-demo-disk-'));
    const out = path.join(work, 'ext4');
    fs.mkdirSync(out);
    tool('debugfs', ['-R', `rdump / ${out}`, fsArg]);
    const root = fs.readdirSync(out).sort();
    expect(root).toEqual(['README.md', 'etc', 'home', 'lost+found', 'usr', 'var']);
    for (const e of ext4Tree()) {
      const p = path.join(out, e.path);
      if (e.symlink !== undefined) expect(fs.readlinkSync(p), e.path).toBe(e.symlink);
      else {
        expect(fs.readFileSync(p).equals(e.data!), e.path).toBe(true);
        expect(fs.statSync(p).mode & 0o777, e.path).toBe(e.mode ?? 0o644);
      }
    }
    expect(fs.existsSync(path.join(out, 'home', 'anna', 'Grüße aus München.txt'))).toBe(true);
  });

  it('has a consistent NTFS partition with its folders and files, byte for byte (ntfs-3g\'s ntfsfix -n, ntfsls and ntfscat)', async () => {
    // ntfs-3g's tools take no offset: copy the partition's data areas (the lab's SEEK_DATA map) into a sparse file.
    const file = await flat();
    const res = await httpRequest(`${new URL(lab.url).origin}/lab/extents?${new URLSearchParams({ path: file, length: String(fs.statSync(file).size) })}`, { ca: lab.certPem });
    expect(res.status, res.body.toString()).toBe(200);
    const extents = JSON.parse(res.body.toString()) as Array<[number, number]>;
    work ||= fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-demo-disk-'));
    const part = path.join(work, 'ntfs.img');
    const src = fs.openSync(file, 'r');
    const dst = fs.openSync(part, 'w');
    try {
      fs.ftruncateSync(dst, ntfs.size);
      for (const [off, len] of extents) {
        const from = Math.max(off, ntfs.start);
        const to = Math.min(off + len, ntfs.start + ntfs.size);
        if (from >= to) continue;
        const buf = Buffer.alloc(to - from);
        fs.readSync(src, buf, 0, buf.length, from);
        fs.writeSync(dst, buf, 0, buf.length, from - ntfs.start);
      }
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
    }
    expect(tool('ntfsfix', ['-n', part]).toString()).toContain('processed successfully'); // consistent, incl. the backup boot sector
    const listing = tool('ntfsls', ['-R', part]).toString();
    for (const name of ['/Users/Public/Documents:', 'report.txt', 'Übersicht – Q4 2026.txt', '/Shares/Finance/2026/12:', 'ledger.csv', 'vaultline-logo.png']) expect(listing).toContain(name);
    for (const e of ntfsTree()) expect(tool('ntfscat', [part, `/${e.path}`]).equals(e.data!), e.path).toBe(true);
    expect(tool('ntfscat', [part, '/Users/Public/Documents/report.txt']).toString()).toContain('Quarterly report Q4 2026');
  });
});
