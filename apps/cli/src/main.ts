/**
 * `npm run vaultline -- <command>`: the Director's API from a terminal.
 * Credentials come from VAULTLINE_URL (default https://127.0.0.1:8080),
 * VAULTLINE_USER (default admin) and VAULTLINE_PASSWORD; the Director's
 * certificate is pinned by VAULTLINE_TLS_FINGERPRINT (or read from the local
 * data dir for a Director on this machine). Output is readable
 * text, or JSON with --json. Exit code 0 on success, 1 on failure (for a run:
 * 1 unless it succeeded).
 */
import {
  REAUTH_FIELD,
  type CopyJob,
  type DrillJobDto,
  type DrillRunsStarted,
  type HealthResponse,
  type InventoryVm,
  type Job,
  type Ok,
  type PublicHealth,
  type RepositoryDto,
  type RepositoryRestorePoint,
  type Run,
  type RunStarted,
  type ThumbprintConfirmation,
  type VCenter,
} from '@vaultline/contracts';
import { ApiError, DirectorClient, directorFingerprint } from './api.ts';

interface Parsed {
  positional: string[];
  flags: Record<string, string | true>;
}

function parseArgs(argv: string[]): Parsed {
  const positional: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (v !== undefined) flags[k] = v;
      else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) flags[k] = argv[++i]!;
      else flags[k] = true;
    } else positional.push(a);
  }
  return { positional, flags };
}

const USAGE = `usage: vaultline <command> [options]   (env: VAULTLINE_URL, VAULTLINE_USER, VAULTLINE_PASSWORD, VAULTLINE_TOTP, VAULTLINE_TLS_FINGERPRINT)

  health
  vcenter list
  vcenter add --name N --url https://vc/sdk --user U --password P [--thumbprint AB:CD:..] [--allow-http]
  vcenter vms <vcenter-name>
  vcenter remove <vcenter-name>            (sends VAULTLINE_PASSWORD again to confirm)
  repo list
  repo add --name N --path /abs/path [--passphrase P] [--hardened]
  job list
  job create --name N --vcenter VC --repo R --vm NAME [--vm NAME ...] [--mode automatic|san|hotadd|nbdssl|nbd]
  job run <job-name> [--wait]
  run status <run-id>
  run cancel <run-id>
  drill list
  drill create --name N --vcenter VC --vm NAME [--vm NAME ...] [--schedule CRON] [--random] [--datastore DS]
  drill run <drill-name> [--wait]
  copy list
  copy create --name N --from REPO --to REPO [--newest N] [--keep N] [--schedule CRON]   (a backup copy job)
  copy run <copy-job-name> [--wait]
  point list [--vm NAME] [--suspects] [--limit N]   (--suspects: ransomware suspects and whether they hold retention)
  point release-hold <point-id> --note "why"      (the VM's retention runs again; audited)
  --json prints raw JSON`;

function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function printRun(run: Run): void {
  console.log(`run ${run.id}  ${run.status}${run.error ? `  (${run.error})` : ''}`);
  for (const vm of run.vms) {
    console.log(`  ${vm.vmName}: ${vm.status} [${vm.phase}]${vm.error ? ` — ${vm.error}` : ''}`);
    for (const d of vm.disks) {
      console.log(`    ${d.label}: ${d.phase} via ${d.transport ?? '?'}; read ${fmtBytes(d.bytesRead)}, skipped ${fmtBytes(d.bytesSkipped)}, stored ${fmtBytes(d.bytesWritten)}${d.cbtUsed ? ', CBT' : ''}`);
      for (const r of d.transportReason) console.log(`      · ${r}`);
    }
  }
}

/** Every value of a repeatable flag: `--vm a --vm b` or `--vm=a`. */
function repeated(argv: string[], name: string): string[] {
  return argv.flatMap((a, i) => (a === `--${name}` && argv[i + 1] ? [argv[i + 1]!] : a.startsWith(`--${name}=`) ? [a.slice(name.length + 3)] : []));
}

async function waitForRun(client: DirectorClient, id: string): Promise<Run> {
  for (;;) {
    const run = await client.call<Run>('GET', `/api/runs/${id}`);
    if (run.status !== 'queued' && run.status !== 'running') return run;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const [group, action, arg] = positional;
  const json = flags.json === true;
  const out = (value: unknown, text: () => void) => (json ? console.log(JSON.stringify(value, null, 2)) : text());
  if (!group || group === 'help' || flags.help) {
    console.log(USAGE);
    return group ? 0 : 1;
  }
  const baseUrl = process.env.VAULTLINE_URL ?? 'https://127.0.0.1:8080';
  const client = new DirectorClient(baseUrl, directorFingerprint(baseUrl));
  if (group === 'health') {
    const h = await client.call<HealthResponse | PublicHealth>('GET', '/api/health').catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 503) return e.body as HealthResponse | PublicHealth;
      throw e;
    });
    out(h, () => console.log(JSON.stringify(h, null, 2)));
    return h.ok ? 0 : 1;
  }
  const password = process.env.VAULTLINE_PASSWORD;
  if (!password) throw new ApiError(0, 'no_credentials', 'set VAULTLINE_PASSWORD (and VAULTLINE_USER if not admin)', null);
  const me = await client.login(process.env.VAULTLINE_USER ?? 'admin', password, process.env.VAULTLINE_TOTP);
  if (me.mustChangePassword) throw new ApiError(0, 'password_change_required', 'this account must choose a new password in the web console first', null);

  const need = (name: string): string => {
    const v = flags[name];
    if (typeof v !== 'string' || !v) throw new ApiError(0, 'usage', `--${name} is required\n\n${USAGE}`, null);
    return v;
  };
  const byName = async <T extends { name: string; id: string }>(path: string, name: string, what: string): Promise<T> => {
    const all = await client.call<T[]>('GET', path);
    const found = all.find((x) => x.name === name || x.id === name);
    if (!found) throw new ApiError(0, 'not_found', `no ${what} named ${name} (have: ${all.map((x) => x.name).join(', ') || 'none'})`, null);
    return found;
  };

  switch (`${group} ${action ?? ''}`.trim()) {
    case 'vcenter list': {
      const list = await client.call<VCenter[]>('GET', '/api/vcenters');
      out(list, () => list.forEach((v) => console.log(`${v.name}\t${v.url}\t${v.username}\t${v.thumbprintSha256 ?? '(http)'}`)));
      return 0;
    }
    case 'vcenter add': {
      const body = { name: need('name'), url: need('url'), username: need('user'), password: need('password'), allowHttp: flags['allow-http'] === true, ...(typeof flags.thumbprint === 'string' ? { thumbprintSha256: flags.thumbprint } : {}) };
      try {
        const v = await client.call<VCenter>('POST', '/api/vcenters', body);
        out(v, () => console.log(`added ${v.name} (${v.url}), thumbprint ${v.thumbprintSha256 ?? 'none (http)'}`));
        return 0;
      } catch (e) {
        if (e instanceof ApiError && e.code === 'thumbprint_confirmation_required') {
          const t = (e.body as ThumbprintConfirmation).thumbprintSha256;
          console.error(`${e.message}\n\nrun again with --thumbprint ${t} once you have checked it`);
          return 1;
        }
        throw e;
      }
    }
    case 'vcenter vms': {
      const vc = await byName<VCenter>('/api/vcenters', arg ?? need('vcenter'), 'vCenter');
      const vms = await client.call<InventoryVm[]>('GET', `/api/vcenters/${vc.id}/vms`);
      out(vms, () => vms.forEach((v) => console.log(`${v.name}\t${v.moref}\t${v.powerState}\tCBT ${v.changeTrackingEnabled ? 'on' : 'off'}\t${v.disks.map((d) => `${d.label} ${fmtBytes(d.capacityBytes)} ${d.controller}`).join(', ')}`)));
      return 0;
    }
    case 'vcenter remove': {
      const vc = await byName<VCenter>('/api/vcenters', arg ?? need('vcenter'), 'vCenter');
      // What cannot be undone carries the password again (the Director's re-authentication).
      const r = await client.call<Ok>('DELETE', `/api/vcenters/${vc.id}`, { [REAUTH_FIELD]: password });
      out(r, () => console.log(`removed ${vc.name}`));
      return 0;
    }
    case 'repo list': {
      const list = await client.call<RepositoryDto[]>('GET', '/api/repositories');
      out(list, () => list.forEach((r) => console.log(`${r.name}\t${r.kind}\t${r.location}\t${r.encrypted ? 'encrypted' : 'not encrypted'}`)));
      return 0;
    }
    case 'repo add': {
      const r = await client.call<RepositoryDto>('POST', '/api/repositories', { kind: 'local', name: need('name'), location: need('path'), hardened: flags.hardened === true, ...(typeof flags.passphrase === 'string' ? { passphrase: flags.passphrase } : {}) });
      out(r, () => console.log(`added repository ${r.name} at ${r.location}${r.encrypted ? ' (encrypted)' : ''}${r.hardened ? ' (hardened)' : ''}`));
      return 0;
    }
    case 'job list': {
      const list = await client.call<Job[]>('GET', '/api/jobs');
      out(list, () => list.forEach((j) => console.log(`${j.name}\t${j.transportMode}\t${j.enabled ? 'enabled' : 'disabled'}\t${j.id}`)));
      return 0;
    }
    case 'job create': {
      const vc = await byName<VCenter>('/api/vcenters', need('vcenter'), 'vCenter');
      const repo = await byName<RepositoryDto>('/api/repositories', need('repo'), 'repository');
      const wanted = repeated(argv, 'vm');
      if (wanted.length === 0) throw new ApiError(0, 'usage', '--vm is required (repeat it for several VMs)', null);
      const vms = await client.call<InventoryVm[]>('GET', `/api/vcenters/${vc.id}/vms`);
      const sources = wanted.map((n) => {
        const vm = vms.find((v) => v.name === n || v.moref === n);
        if (!vm) throw new ApiError(0, 'not_found', `no VM named ${n} in ${vc.name}`, null);
        return { moref: vm.moref, name: vm.name, ...(vm.instanceUuid ? { instanceUuid: vm.instanceUuid } : {}) };
      });
      const job = await client.call<Job>('POST', '/api/jobs', { name: need('name'), vcenterId: vc.id, repositoryId: repo.id, sources, transportMode: typeof flags.mode === 'string' ? flags.mode : 'automatic' });
      out(job, () => console.log(`created job ${job.name} (${job.id})`));
      return 0;
    }
    case 'job run': {
      const job = await byName<Job>('/api/jobs', arg ?? need('job'), 'job');
      const started = await client.call<Run>('POST', `/api/jobs/${job.id}/run`);
      if (flags.wait !== true) {
        out(started, () => console.log(`started run ${started.id}`));
        return 0;
      }
      const run = await waitForRun(client, started.id);
      out(run, () => printRun(run));
      return run.status === 'succeeded' || run.status === 'warning' ? 0 : 1;
    }
    case 'run status': {
      const run = await client.call<Run>('GET', `/api/runs/${arg ?? need('run')}`);
      out(run, () => printRun(run));
      return 0;
    }
    case 'run cancel': {
      await client.call('POST', `/api/runs/${arg ?? need('run')}/cancel`);
      console.log('cancel requested');
      return 0;
    }
    case 'drill list': {
      const list = await client.call<DrillJobDto[]>('GET', '/api/drills');
      out(list, () => list.forEach((d) => console.log(`${d.name}\t${d.schedule ?? 'on demand'}\t${d.pointChoice}\t${d.enabled ? 'enabled' : 'disabled'}\t${d.vms.map((v) => v.name).join(', ')}`)));
      return 0;
    }
    case 'drill create': {
      const vc = await byName<VCenter>('/api/vcenters', need('vcenter'), 'vCenter');
      const wanted = repeated(argv, 'vm');
      if (wanted.length === 0) throw new ApiError(0, 'usage', '--vm is required (repeat it for several VMs)', null);
      // A drill restores restore points, so its VMs are found by their restore points (the VM itself may be gone).
      const vms = await Promise.all(
        wanted.map(async (n) => {
          const [p] = await client.call<RepositoryRestorePoint[]>('GET', `/api/restore-points?vm=${encodeURIComponent(n)}&limit=1`);
          if (!p) throw new ApiError(0, 'not_found', `${n} has no restore point to drill; back it up first`, null);
          return { instanceUuid: p.vmInstanceUuid, name: p.vmName };
        }),
      );
      const body = { name: need('name'), vcenterId: vc.id, vms, pointChoice: flags.random === true ? 'random' : 'newest', ...(typeof flags.schedule === 'string' ? { schedule: flags.schedule } : {}), ...(typeof flags.datastore === 'string' ? { datastore: flags.datastore } : {}) };
      const drill = await client.call<DrillJobDto>('POST', '/api/drills', body);
      out(drill, () => console.log(`created drill ${drill.name} (${drill.schedule ?? 'on demand'})`));
      return 0;
    }
    case 'drill run': {
      const drill = await byName<DrillJobDto>('/api/drills', arg ?? need('drill'), 'drill');
      const { runIds } = await client.call<DrillRunsStarted>('POST', `/api/drills/${drill.id}/run`);
      if (flags.wait !== true) {
        out({ runIds }, () => runIds.forEach((id) => console.log(`started run ${id}`)));
        return 0;
      }
      const runs = await Promise.all(runIds.map((id) => waitForRun(client, id)));
      out(runs, () => runs.forEach(printRun));
      return runs.every((r) => r.status === 'succeeded' || r.status === 'warning') ? 0 : 1;
    }
    case 'copy list': {
      const list = await client.call<CopyJob[]>('GET', '/api/copy-jobs');
      out(list, () => list.forEach((j) => console.log(`${j.name}\t${j.source.name} -> ${j.target.name}\t${j.newest ? `newest ${j.newest}` : 'every point'}\tkeeps ${j.retention.keepLast}\t${j.schedule ?? 'on demand'}\t${j.copies} copies`)));
      return 0;
    }
    case 'copy create': {
      const from = await byName<RepositoryDto>('/api/repositories', need('from'), 'repository');
      const to = await byName<RepositoryDto>('/api/repositories', need('to'), 'repository');
      const body = {
        name: need('name'),
        sourceRepositoryId: from.id,
        targetRepositoryId: to.id,
        newest: typeof flags.newest === 'string' ? Number(flags.newest) : null,
        ...(typeof flags.keep === 'string' ? { retention: { keepLast: Number(flags.keep) } } : {}),
        ...(typeof flags.schedule === 'string' ? { schedule: flags.schedule } : {}),
      };
      const job = await client.call<CopyJob>('POST', '/api/copy-jobs', body);
      out(job, () => console.log(`created copy job ${job.name}: ${job.source.name} -> ${job.target.name} (${job.schedule ?? 'on demand'})`));
      return 0;
    }
    case 'copy run': {
      const job = await byName<CopyJob>('/api/copy-jobs', arg ?? need('job'), 'copy job');
      const { runId } = await client.call<RunStarted>('POST', `/api/copy-jobs/${job.id}/run`);
      if (flags.wait !== true) {
        out({ runId }, () => console.log(`started run ${runId}`));
        return 0;
      }
      const run = await waitForRun(client, runId);
      out(run, () => {
        printRun(run);
        for (const l of run.vms.flatMap((v) => v.log)) console.log(`  ${l.message}`);
      });
      return run.status === 'succeeded' || run.status === 'warning' ? 0 : 1;
    }
    case 'point list': {
      const q = new URLSearchParams({ limit: typeof flags.limit === 'string' ? flags.limit : '100', ...(typeof flags.vm === 'string' ? { vm: flags.vm } : {}) });
      const all = await client.call<RepositoryRestorePoint[]>('GET', `/api/restore-points?${q.toString()}`);
      const points = flags.suspects === true ? all.filter((p) => p.ransomwareSuspect) : all;
      out(points, () => {
        for (const p of points) {
          const marks = [p.ransomwareSuspect ? (p.holdReleasedAt ? `ransomware suspect, hold released by ${p.holdReleasedBy ?? '?'} ${p.holdReleasedAt}` : 'ransomware suspect: holds retention') : null, p.damaged ? 'damaged' : null].filter(Boolean);
          console.log(`${p.id}\t${p.createdAt}\t${p.vmName}\t${p.repository}\t${fmtBytes(p.logicalBytes)}${marks.length ? `\t${marks.join('; ')}` : ''}`);
          if (p.ransomwareSuspect && p.anomaly) console.log(`  ${p.anomaly}`);
        }
      });
      return 0;
    }
    case 'point release-hold': {
      const id = arg ?? need('point');
      const point = await client.call<RepositoryRestorePoint>('POST', `/api/restore-points/${encodeURIComponent(id)}/release-hold`, { note: need('note') });
      out(point, () => console.log(`released the retention hold of ${point.vmName}'s restore point of ${point.createdAt}; retention of ${point.vmName} in ${point.repository} runs again`));
      return 0;
    }
    default:
      console.error(USAGE);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`vaultline: ${err instanceof ApiError ? err.message : ((err as Error)?.message ?? String(err))}`);
    process.exit(1);
  },
);
