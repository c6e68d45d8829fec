import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLabServer, cleanupRunDir, loopDevicesUnder, mountsUnder } from '../src/index.ts';
import { httpRequest } from '../src/soap.ts';

const cli = path.resolve(import.meta.dirname, '..', 'src', 'cli.ts');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vaultline-lab-cli-'));

function lab(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, VAULTLINE_LAB_DIR: dir },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  await buildLabServer(); // a cold build (fresh clone) must not count against the test's own timeout
});

afterAll(() => {
  // if an assertion failed half-way, still leave nothing behind
  const state = path.join(dir, 'state.json');
  if (fs.existsSync(state)) {
    const { pid } = JSON.parse(fs.readFileSync(state, 'utf8')) as { pid: number };
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  cleanupRunDir(path.join(dir, 'run'));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('lab CLI', () => {
  it('up --san starts a detached lab and prints its JSON; down leaves no process, loop device, mount or run folder', async () => {
    const up = lab('up', '--san');
    expect(up.status, up.err).toBe(0);
    const state = JSON.parse(up.out) as { url: string; pid: number; thumbprintSha256: string; datastores: { path: string; naa: string }[]; run: string };
    expect(state.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
    expect(state.thumbprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(state.datastores.map((d) => d.naa)).toHaveLength(2);
    expect(alive(state.pid)).toBe(true);
    const inv = await httpRequest(`${new URL(state.url).origin}/lab/inventory`, { ca: fs.readFileSync(path.join(dir, 'tls', 'cert.pem'), 'utf8') });
    expect(inv.status).toBe(200);
    expect(loopDevicesUnder(dir).length).toBeGreaterThan(0);

    const status = lab('status');
    expect(JSON.parse(status.out)).toMatchObject({ running: true, pid: state.pid });

    const vm = lab('create-vm', '--name', 'cli-vm', '--disk', '64M', '--disk', '32M:ide');
    expect(vm.status, vm.err).toBe(0);
    expect((JSON.parse(vm.out) as { disks: unknown[] }).disks).toHaveLength(2);
    expect(lab('write', '--vm', 'cli-vm', '--offset', '1M', '--length', '1M', '--pattern', 'text').status).toBe(0);
    const sha = JSON.parse(lab('sha256', '--vm', 'cli-vm').out) as { sha256: string };
    expect(sha.sha256).toMatch(/^[0-9a-f]{64}$/);

    const down = lab('down');
    expect(down.status, down.err).toBe(0);
    expect(alive(state.pid)).toBe(false);
    expect(loopDevicesUnder(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(fs.existsSync(state.run)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'state.json'))).toBe(false);
    // the certificate is kept, so the next `up` has the same thumbprint
    const again = lab('up');
    expect(again.status, again.err).toBe(0);
    expect((JSON.parse(again.out) as { thumbprintSha256: string }).thumbprintSha256).toBe(state.thumbprintSha256);
    expect(lab('down').status).toBe(0);
  }, 120_000);
});
