/**
 * What a notification says: a subject, a plain-text body an operator can act
 * on, and the same facts as JSON for webhooks.
 */
export interface RunFacts {
  id: string;
  kind: string;
  status: string;
  trigger: string;
  jobName: string | null;
  drillName: string | null;
  request: unknown;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
  vms: { vmName: string; status: string; error: string | null; log: unknown }[];
}

export interface CleanupFacts {
  id: string;
  kind: string;
  target: Record<string, unknown>;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  transporterId: string;
  /** Why the sweep refused the row (journal-trust), when it did. */
  refusal?: string | null;
}

export interface FlrLeftoverFacts {
  id: string;
  sessionId: string;
  layer: string;
  host: string;
  target: Record<string, unknown>;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  /** Why the sweep refused the row (journal-trust), when it did. */
  refusal?: string | null;
}

export interface Message {
  event: 'run.finished' | 'cleanup.stuck' | 'cleanup.refused' | 'file-restore.stuck' | 'file-restore.refused' | 'restore-point.anomaly' | 'test';
  subject: string;
  text: string;
  data: Record<string, unknown>;
}

function what(r: RunFacts): string {
  const req = (r.request ?? {}) as { name?: string; task?: string };
  const item = r.vms[0]?.vmName ?? '';
  switch (r.kind) {
    case 'backup':
      if (r.jobName) return `backup job ${r.jobName}${r.trigger === 'retry' || r.trigger === 'auto-retry' ? ' (retry of failed VMs)' : ''}`;
      return r.trigger === 'one-off' ? `one-off backup of ${item}` : 'backup job (deleted job)';
    case 'restore':
      return `restore ${req.name ? `as ${req.name}` : ''}`.trim();
    case 'drill':
      return `restore drill ${r.drillName ? `${r.drillName} ` : ''}(${item})`;
    case 'verify':
      return `verify of repository ${item}`;
    case 'gc':
      return `garbage collection of repository ${item}`;
    case 'copy':
      return `backup copy job ${item}`;
    default:
      return `${r.kind} run`;
  }
}

const seconds = (r: RunFacts) => (r.startedAt && r.finishedAt ? Math.round((r.finishedAt.getTime() - r.startedAt.getTime()) / 1000) : null);

export function runMessage(r: RunFacts, consoleUrl: string | null): Message {
  const verdict = r.status === 'warning' ? 'finished with warnings' : r.status;
  const counts = r.vms.length > 1 ? ` (${r.vms.filter((v) => v.status === r.status).length} of ${r.vms.length} VMs)` : '';
  const subject = `[Vaultline] ${what(r)} ${verdict}${counts}`;
  const lines = [`${what(r)}: ${verdict}`, `started ${r.startedAt?.toISOString() ?? '—'} by ${r.trigger}, took ${seconds(r) ?? '?'} s`];
  if (r.error) lines.push(`error: ${r.error}`);
  for (const vm of r.vms) {
    lines.push('', `${vm.vmName}: ${vm.status}${vm.error ? ` — ${vm.error}` : ''}`);
    const notable = ((vm.log as { level: string; message: string }[] | null) ?? []).filter((l) => l.level === 'warn' || l.level === 'error').slice(-8);
    for (const l of notable) lines.push(`  ${l.level}: ${l.message}`);
  }
  if (consoleUrl) lines.push('', `details: ${consoleUrl}/runs/${r.id}`);
  return {
    event: 'run.finished',
    subject,
    text: lines.join('\n'),
    data: {
      run: {
        id: r.id,
        kind: r.kind,
        status: r.status,
        trigger: r.trigger,
        job: r.jobName,
        drill: r.drillName,
        startedAt: r.startedAt?.toISOString() ?? null,
        finishedAt: r.finishedAt?.toISOString() ?? null,
        error: r.error,
        vms: r.vms.map((v) => ({ name: v.vmName, status: v.status, error: v.error })),
      },
      ...(consoleUrl ? { url: `${consoleUrl}/runs/${r.id}` } : {}),
    },
  };
}

const LEFTOVER: Record<string, (t: Record<string, unknown>) => string> = {
  snapshot: (t) => `snapshot ${String(t.snapshot ?? '(not yet known)')} on VM ${String(t.vmMoref ?? '?')}`,
  disk_attach: (t) => `disk ${String(t.fileName ?? '?')} attached to the Transporter's VM ${String(t.proxyVm ?? '?')}`,
  lun_mount: (t) => `LUN ${String(t.naa ?? '?')} mounted on the Transporter (${String(t.device ?? '?')})`,
  restore_vm: (t) => `half-restored VM ${String(t.name ?? '?')}`,
};

export function cleanupMessage(c: CleanupFacts): Message {
  const thing = (LEFTOVER[c.kind] ?? (() => `${c.kind} ${JSON.stringify(c.target)}`))(c.target);
  if (c.refusal) {
    return {
      event: 'cleanup.refused',
      subject: `[Vaultline] cleanup journal row refused: ${thing}`,
      text: [
        `The orphan sweep of Transporter ${c.transporterId} refused a cleanup journal row (${c.kind}, written ${c.createdAt.toISOString()}) and did nothing for it:`,
        `reason: ${c.refusal}`,
        '',
        'Rows are signed by the Transporter that writes them; an unsigned row is either from before the upgrade that added signing or was written to the database by someone else.',
        `Check whether the ${thing} still exists and remove it by hand if it is a leftover of Vaultline; if nobody expects this row, check who can write to the database.`,
      ].join('\n'),
      data: { cleanup: { id: c.id, kind: c.kind, target: c.target, refusal: c.refusal, since: c.createdAt.toISOString(), transporterId: c.transporterId } },
    };
  }
  return {
    event: 'cleanup.stuck',
    subject: `[Vaultline] cleanup needs attention: ${thing}`,
    text: [
      `Vaultline could not remove a ${thing} after ${c.attempts} attempts (since ${c.createdAt.toISOString()}, Transporter ${c.transporterId}).`,
      `last error: ${c.lastError ?? 'none recorded'}`,
      '',
      'The orphan sweep keeps retrying. If this does not clear, remove it in vCenter (for a snapshot: Snapshots → Delete, then Consolidate).',
    ].join('\n'),
    data: { cleanup: { id: c.id, kind: c.kind, target: c.target, attempts: c.attempts, lastError: c.lastError, since: c.createdAt.toISOString(), transporterId: c.transporterId } },
  };
}

const FLR_LEFTOVER: Record<string, (t: Record<string, unknown>) => string> = {
  mount: (t) => `filesystem mounted at ${String(t.mountPoint ?? '?')}`,
  loop: (t) => `loop device on ${String(t.backingFile ?? '?')} at offset ${String(t.offset ?? '?')}`,
  fuse: (t) => `nbdfuse mount at ${String(t.mountPoint ?? '?')}`,
  nbd_server: (t) => `NBD server process ${String(t.pid ?? '?')} (socket ${String(t.socket ?? '?')})`,
  session: (t) => `session folder ${String(t.dir ?? '?')}`,
};

/** A layer of a file-level restore session that the Director's sweep keeps failing to undo. */
export function flrLeftoverMessage(f: FlrLeftoverFacts): Message {
  const thing = (FLR_LEFTOVER[f.layer] ?? (() => `${f.layer} ${JSON.stringify(f.target)}`))(f.target);
  if (f.refusal) {
    return {
      event: 'file-restore.refused',
      subject: `[Vaultline] file-level restore journal row refused on ${f.host}: ${thing}`,
      text: [
        `The Director on ${f.host} refused a file-level restore journal row (session ${f.sessionId}, written ${f.createdAt.toISOString()}) and did nothing for it:`,
        `reason: ${f.refusal}`,
        '',
        "Rows are signed by the Director that writes them, and undone only when what they name lies under the Director's file-restore folder; an unsigned row is either from before the upgrade that added signing or was written to the database by someone else.",
        `Check on ${f.host} whether the ${thing} still exists and undo it by hand if it is a leftover of Vaultline; if nobody expects this row, check who can write to the database.`,
      ].join('\n'),
      data: { fileRestore: { id: f.id, session: f.sessionId, layer: f.layer, host: f.host, target: f.target, refusal: f.refusal, since: f.createdAt.toISOString() } },
    };
  }
  return {
    event: 'file-restore.stuck',
    subject: `[Vaultline] file-level restore cleanup needs attention on ${f.host}: ${thing}`,
    text: [
      `Vaultline could not undo a ${thing} of file-level restore session ${f.sessionId} on the Director host ${f.host} after ${f.attempts} attempts (since ${f.createdAt.toISOString()}).`,
      `last error: ${f.lastError ?? 'none recorded'}`,
      '',
      'The Director retries every five minutes and at its next start. If this does not clear, unmount or detach it on that host (umount, losetup -d, then remove the session folder).',
    ].join('\n'),
    data: { fileRestore: { id: f.id, session: f.sessionId, layer: f.layer, host: f.host, target: f.target, attempts: f.attempts, lastError: f.lastError, since: f.createdAt.toISOString() } },
  };
}

export interface AnomalyFacts {
  id: string;
  vmName: string;
  vmInstanceUuid: string;
  repoPointId: string;
  createdAt: Date;
  anomaly: string | null;
  repositoryId: string;
  repository: string;
  holdReleasedAt: Date | null;
}

/** The ransomware signal marked a restore point: what was measured, and that retention of the VM is held. */
export function anomalyMessage(a: AnomalyFacts, consoleUrl: string | null): Message {
  return {
    event: 'restore-point.anomaly',
    subject: `[Vaultline] possible ransomware: ${a.vmName}'s new data turned high-entropy`,
    text: [
      `The restore point ${a.repoPointId} of ${a.vmName} in repository ${a.repository} (taken ${a.createdAt.toISOString()}) stored new data that is high-entropy and incompressible against the VM's recent restore points:`,
      a.anomaly ?? '(no measurement recorded)',
      '',
      a.holdReleasedAt
        ? `An operator already released the retention hold (${a.holdReleasedAt.toISOString()}).`
        : `Retention of ${a.vmName} in ${a.repository} is held: no older restore point is pruned until an operator releases the hold on this point in the console.`,
      'Check the VM for encrypted files before restoring from, or trusting, points taken after it.',
      ...(consoleUrl ? ['', `details: ${consoleUrl}/repositories/${a.repositoryId}`] : []),
    ].join('\n'),
    data: { restorePoint: { id: a.id, repoPointId: a.repoPointId, vmName: a.vmName, vmInstanceUuid: a.vmInstanceUuid, repository: a.repository, createdAt: a.createdAt.toISOString(), anomaly: a.anomaly, held: !a.holdReleasedAt } },
  };
}

export function testMessage(targetName: string): Message {
  return { event: 'test', subject: '[Vaultline] test notification', text: `This is a test notification to ${targetName}. If you can read it, Vaultline can reach you here.`, data: { target: targetName } };
}
