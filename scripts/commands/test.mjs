// `npm test`: set up, then lint, typecheck, every Vitest project and the browser tests (and, as root,
// the delivery tests), with a summary of what failed at the end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { aptInstall } from '../lib/apt.mjs';
import { SetupError, say } from '../lib/output.mjs';
import { LAB_CLI, ROOT, STATE, isRoot } from '../lib/paths.mjs';
import { have, run, stopServices } from '../lib/processes.mjs';
import { setup } from '../lib/setup.mjs';

/** A terminal colour code (ESC [ … m), built from its character code: a regex literal would hold a control character. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
/** The first line of a failure message, without colour codes, at most 300 characters. */
const firstLine = (m) => String(m ?? '').replace(ANSI_COLOUR, '').split('\n').find((l) => l.trim())?.trim().slice(0, 300) ?? '';

/** Seconds as "12 s" or "7 min 05 s". */
const formatDuration = (s) => (s < 60 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`);

function parseVitestJson(file) {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    const failures = [];
    for (const f of j.testResults ?? []) {
      for (const t of f.assertionResults ?? []) {
        if (t.status === 'failed') failures.push({ where: `${path.relative(ROOT, f.name)} > ${t.fullName}`, why: firstLine(t.failureMessages?.[0]) });
      }
      // A file that failed before any test ran (import error, hook failure).
      if (f.status === 'failed' && !(f.assertionResults ?? []).some((t) => t.status === 'failed')) failures.push({ where: path.relative(ROOT, f.name), why: firstLine(f.message) });
    }
    return { passed: j.numPassedTests ?? 0, failed: j.numFailedTests ?? 0, skipped: (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0), failures };
  } catch {
    return null;
  }
}

function parsePlaywrightJson(file) {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    const failures = [];
    const walk = (suite, trail) => {
      for (const spec of suite.specs ?? []) {
        for (const t of spec.tests ?? []) {
          if (t.status === 'unexpected' || t.status === 'flaky') {
            const err = t.results?.find((r) => r.status !== 'passed')?.error?.message;
            failures.push({ where: `${[...trail, spec.title].join(' > ')}${t.status === 'flaky' ? ' (flaky: passed on retry)' : ''}`, why: firstLine(err) });
          }
        }
      }
      for (const s of suite.suites ?? []) walk(s, [...trail, s.title]);
    };
    for (const s of j.suites ?? []) walk(s, [s.title]);
    return { passed: j.stats?.expected ?? 0, failed: (j.stats?.unexpected ?? 0) + (j.stats?.flaky ?? 0), skipped: j.stats?.skipped ?? 0, failures };
  } catch {
    return null;
  }
}

function ensureChromium() {
  if (existsSync('/usr/bin/chromium')) return;
  aptInstall(['chromium'], 'The browser tests need Debian\'s chromium (/usr/bin/chromium).');
}

function ensureQemuImg() {
  if (have('qemu-img')) return;
  aptInstall(['qemu-utils'], 'The VMDK and lab tests check disk images with an independent reader, qemu-img (qemu-utils).');
}

/**
 * What the KVM tests (@vaultline/kvm) run: QEMU boots a small Debian guest built from Debian's packages
 * (fetched with apt-get download, never installed), and libvirt's virt-xml-validate checks the domain XML.
 */
const KVM_TOOLS = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['virt-xml-validate', 'libvirt-clients'],
  // virt-xml-validate runs xmllint underneath.
  ['xmllint', 'libxml2-utils'],
  ['sgdisk', 'gdisk'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['dpkg-deb', 'dpkg'],
];

function ensureKvmTools() {
  const missing = [...new Set(KVM_TOOLS.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  // UEFI firmware: the QEMU runner's EFI start is tested too.
  if (!existsSync('/usr/share/ovmf/OVMF.fd') && !existsSync('/usr/share/OVMF/OVMF_CODE.fd')) missing.push('ovmf');
  if (missing.length) aptInstall(missing, `The KVM tests (instant boot, restore to KVM/Proxmox) need ${missing.join(', ')}.`);
  // The test guest's kernel, busybox and GRUB come from `apt-get download`: a fresh machine needs package lists.
  const policy = spawnSync('apt-cache', ['policy', 'linux-image-amd64'], { encoding: 'utf8' });
  if (isRoot && !/Candidate: (?!\(none\))/.test(policy.stdout ?? '')) run('apt-get', ['update', '-qq'], { quiet: true, allowFail: true });
}

/** The S3 tests' server: Ceph's RADOS Gateway with a monitor and an OSD of its own (@vaultline/s3-lab). */
function ensureCeph() {
  const tools = ['radosgw', 'radosgw-admin', 'ceph-mon', 'ceph-osd', 'ceph', 'monmaptool', 'ceph-authtool'];
  if (tools.every(have)) return;
  aptInstall(['radosgw', 'ceph-mon', 'ceph-osd', 'ceph-common'], "The S3 backend tests run against a real S3 server, Ceph's RADOS Gateway (radosgw, ceph-mon, ceph-osd).");
}

/** The NFS server's tests (@vaultline/nfs) talk to it with an independent client, libnfs's nfs-ls/nfs-cat/nfs-cp. */
function ensureNfsClient() {
  if (['nfs-ls', 'nfs-cat', 'nfs-cp'].every(have)) return;
  aptInstall(['libnfs-utils'], "The NFS server's tests read and write through an independent NFSv3 client, libnfs-utils (nfs-ls, nfs-cat, nfs-cp).");
}

/** What `npm test -- delivery` runs besides Node: debootstrap, QEMU, podman and the image tools. */
const DELIVERY_TOOLS = [
  ['debootstrap', 'debootstrap'],
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['podman', 'podman'],
  ['runc', 'runc'],
  ['mcopy', 'mtools'],
  ['mkfs.fat', 'dosfstools'],
  ['sfdisk', 'fdisk'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['ssh', 'openssh-client'],
  ['psql', 'postgresql-client'],
];

function ensureDeliveryTools() {
  if (!isRoot) throw new SetupError('the delivery tests need root (debootstrap, chroot, mounts, podman)');
  const missing = [...new Set(DELIVERY_TOOLS.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  // UEFI firmware for the EFI boot of the appliance.
  if (!existsSync('/usr/share/ovmf/OVMF.fd')) missing.push('ovmf');
  if (missing.length) aptInstall(missing, `The delivery tests need ${missing.join(', ')}.`);
}

export async function test(args) {
  const began = Date.now();
  const { databaseUrl, redisUrl } = await setup();
  const only = args[0];
  if (only === 'delivery') ensureDeliveryTools();
  // Build the lab vCenter once, before tests start it (a cold Go build takes about a minute).
  say('building the lab vCenter (cached after the first time)…');
  run(process.execPath, ['--import', 'tsx', LAB_CLI, 'build'], { quiet: true });
  // Tests make their own databases on this server; they connect to its `postgres` database.
  const server = new URL(databaseUrl);
  server.pathname = '/postgres';
  const env = { DATABASE_URL: server.toString(), REDIS_URL: redisUrl, NODE_ENV: 'test' };
  const reports = path.join(STATE, 'reports');
  mkdirSync(reports, { recursive: true });
  const results = [];
  const step = (name, cmd, cmdArgs, extraEnv = {}) => {
    say(`— ${name}`);
    const started = Date.now();
    const r = spawnSync(cmd, cmdArgs, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env, ...extraEnv } });
    results.push({ name, ok: r.status === 0, seconds: (Date.now() - started) / 1000 });
    return r.status === 0;
  };
  const bin = (n) => path.join(ROOT, 'node_modules', '.bin', n);
  if (!only || only === 'lint') step('lint (ESLint, import boundaries)', bin('eslint'), ['.', '--max-warnings=0']);
  if (!only || only === 'typecheck') step('typecheck (tsc, every workspace)', bin('turbo'), ['run', 'typecheck', '--output-logs=errors-only'], { TURBO_TELEMETRY_DISABLED: '1' });
  let unit = null;
  if (!only || only === 'unit') {
    ensureQemuImg();
    ensureKvmTools();
    ensureNfsClient();
    // Installed once here: test files started in parallel must not each run apt-get.
    ensureCeph();
    const out = path.join(reports, 'vitest.json');
    rmSync(out, { force: true });
    step('unit and integration tests (Vitest, real Postgres/Redis/lab)', bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...args.slice(only ? 1 : 0)]);
    unit = parseVitestJson(out);
    results.at(-1).counts = unit;
  }
  let e2e = null;
  if (!only || only === 'e2e') {
    ensureChromium();
    const out = path.join(reports, 'playwright.json');
    rmSync(out, { force: true });
    step('browser tests (Playwright + Debian chromium)', bin('playwright'), ['test', '-c', 'e2e/playwright.config.ts'], { PLAYWRIGHT_JSON_OUTPUT_NAME: out });
    e2e = parsePlaywrightJson(out);
    results.at(-1).counts = e2e;
  }
  // Last, being the slowest: the OVA appliance and the Docker image, built and run for real (needs root).
  let delivery = null;
  if (!only && !isRoot) say('delivery tests (OVA appliance, Docker image) not run: they need root (debootstrap, chroot, QEMU, podman)');
  if ((!only && isRoot) || only === 'delivery') {
    if (!only) ensureDeliveryTools();
    const out = path.join(reports, 'delivery.json');
    rmSync(out, { force: true });
    step('delivery: the OVA appliance booted in QEMU, the Docker image run with podman', bin('vitest'), ['run', '-c', 'packages/delivery/vitest.delivery.config.ts', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...args.slice(1)]);
    delivery = parseVitestJson(out);
    results.at(-1).counts = delivery;
  }
  stopServices();
  say('');
  for (const r of results) {
    // How long each part took: CI has a time limit, and the log's end is where one looks.
    say(`${r.ok ? '\x1b[32m✔\x1b[0m' : '\x1b[31m✘\x1b[0m'} ${r.name} (${formatDuration(r.seconds)})`);
    // Named again here, at the end, where a log cut to its last lines still shows them.
    for (const f of r.counts?.failures ?? []) say(`    ✘ ${f.where}${f.why ? `\n        ${f.why}` : ''}`);
  }
  const total = [unit, e2e, delivery].filter(Boolean).reduce((a, b) => ({ passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: a.skipped + b.skipped }), { passed: 0, failed: 0, skipped: 0 });
  const stepFailures = results.filter((r) => !r.ok).length;
  // A failed step whose runner reported no failed test (lint, typecheck, a crash) counts as one failure.
  const otherFailures = results.filter((r) => !r.ok && !(r.counts?.failed > 0)).length;
  process.stdout.write(`\nTests: ${total.passed} passed, ${total.failed + otherFailures} failed, ${total.skipped} skipped (${formatDuration((Date.now() - began) / 1000)} in all, set-up included)\n`);
  process.exit(stepFailures ? 1 : 0);
}
