import { z } from 'zod';

export const TransportModeSchema = z.enum(['automatic', 'san', 'hotadd', 'nbdssl', 'nbd']);
export type TransportMode = z.infer<typeof TransportModeSchema>;
export const TransportSchema = z.enum(['san', 'hotadd', 'nbdssl', 'nbd']);
export type Transport = z.infer<typeof TransportSchema>;

/** How the console and the run logs name a transport mode (the operator's words, not the API's). */
export const TRANSPORT_LABEL: Record<TransportMode, string> = { automatic: 'Automatic', san: 'Direct SAN', hotadd: 'HotAdd', nbdssl: 'NBDSSL', nbd: 'NBD' };

/** What a backup snapshot is named in vSphere: the prefix and the run item's id (what operators see in the vSphere Client). */
export const SNAPSHOT_PREFIX = 'vaultline-';
export const backupSnapshotName = (runVmId: string): string => `${SNAPSHOT_PREFIX}${runVmId}`;

/** The label of a transport mode; an unknown name comes back as it is. */
export function transportLabel(mode: string | null | undefined): string {
  if (!mode) return 'a transport not yet chosen';
  return (TRANSPORT_LABEL as Record<string, string>)[mode] ?? mode;
}

/** One VM. Jobs stored before containers existed have exactly this shape (no `kind`). */
export const VmSourceSchema = z.object({
  kind: z.literal('vm').optional(),
  /** The VM's moref in its vCenter at the time it was chosen. */
  moref: z.string().min(1),
  name: z.string().min(1),
  /** Stable identity across re-registration; preferred over the moref when set. */
  instanceUuid: z.string().optional(),
  /** Device keys of disks the job leaves out (not snapshotted into the restore point, not read). */
  excludeDisks: z.array(z.number().int()).optional(),
});
export type VmSource = z.infer<typeof VmSourceSchema>;

/** A VM a container source skips (matched by instance UUID when set, else moref). */
export const ExcludedVmSchema = VmSourceSchema.omit({ kind: true, excludeDisks: true });
export type ExcludedVm = z.infer<typeof ExcludedVmSchema>;

/**
 * A datacenter, cluster, host or VM folder, or a vSphere tag: each run backs up the VMs it holds when the run
 * starts (VMs added or tagged later are included, removed or untagged ones are not), less `exclude`. A tag
 * holds the VMs it is attached to, directly or through a container of theirs; its moref is the tag's id.
 */
export const ContainerSourceSchema = z.object({
  kind: z.enum(['datacenter', 'cluster', 'host', 'folder', 'tag']),
  moref: z.string().min(1),
  name: z.string().min(1),
  /** Inventory path when chosen ("DC0/DC0_C0", "DC0/vm/Apps"; "Category/Tag" for a tag), for people; the moref identifies it. */
  path: z.string().min(1),
  exclude: z.array(ExcludedVmSchema).optional(),
});
export type ContainerSource = z.infer<typeof ContainerSourceSchema>;

/** A job's source: a container (with a `kind`), or a VM (`kind` 'vm' or absent, as jobs stored before containers). */
export const JobSourceSchema = z.union([ContainerSourceSchema, VmSourceSchema]);
export type JobSource = z.infer<typeof JobSourceSchema>;

export const isContainerSource = (s: JobSource): s is ContainerSource => s.kind !== undefined && s.kind !== 'vm';

export const RetentionSchema = z.object({
  keepLast: z.number().int().min(1).max(10_000).default(14),
  keepDaily: z.number().int().min(0).max(10_000).default(0),
  keepWeekly: z.number().int().min(0).max(10_000).default(0),
  keepMonthly: z.number().int().min(0).max(10_000).default(0),
  keepYearly: z.number().int().min(0).max(10_000).default(0),
  /** Restore points cannot be deleted for this many days, even by an admin. */
  immutableDays: z.number().int().min(0).max(3650).default(0),
});

export type Retention = z.infer<typeof RetentionSchema>;

/**
 * The retention settings `after` lowers against `before`: keeping fewer restore points deletes
 * some at the next prune, and a shorter immutability lets them be deleted sooner. Either needs the
 * user's password again.
 */
export function retentionLowered(before: Retention, after: Retention): Array<{ field: keyof Retention; from: number; to: number }> {
  return (Object.keys(RetentionSchema.shape) as Array<keyof Retention>).filter((k) => after[k] < before[k]).map((field) => ({ field, from: before[field], to: after[field] }));
}

export const JobOptionsSchema = z.object({
  /** Quiesce the guest: 'off', 'try' (fall back to crash-consistent and say so) or 'require' (fail the VM). */
  quiesce: z.enum(['off', 'try', 'require']).default('try'),
  /** Manual mode only: when the chosen transport fails mid-job, retry that disk over the network. */
  failoverToNetwork: z.boolean().default(true),
  /** Turn on Changed Block Tracking on VMs that have it off. */
  enableCbt: z.boolean().default(true),
  /** Fraction of unchanged areas re-read to catch silent CBT errors (0 = off). */
  cbtSanityRate: z.number().min(0).max(1).default(0.002),
  retention: RetentionSchema.default(RetentionSchema.parse({})),
  /**
   * Automatic retries: when a run ends with failed VMs, a run of only those VMs starts `delayMinutes` later,
   * up to `count` times (0 = off). Cancelled VMs are not retried.
   */
  retries: z
    .object({ count: z.number().int().min(0).max(5).default(0), delayMinutes: z.number().int().min(1).max(1440).default(10) })
    .default({ count: 0, delayMinutes: 10 }),
  /**
   * Backup window (appliance time zone): scheduled runs start only inside it, and VMs of a run not yet started
   * when it closes are skipped, saying so (VMs being copied finish). `end` before `start` spans midnight. null = any time.
   */
  window: z
    .object({ start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'), end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM') })
    .refine((w) => w.start !== w.end, 'a backup window must not start and end at the same time')
    .nullable()
    .default(null),
});
export type JobOptions = z.infer<typeof JobOptionsSchema>;

/**
 * POST /api/backups: one VM backed up once, now, into a repository, with a job's options but no job — nothing
 * is scheduled or kept around, and no job's retention ever prunes the point (it stays until deleted).
 */
export const OneOffBackupSchema = z.object({
  vcenterId: z.uuid(),
  repositoryId: z.uuid(),
  vm: VmSourceSchema.omit({ kind: true }),
  transportMode: TransportModeSchema.default('automatic'),
  options: JobOptionsSchema.default(JobOptionsSchema.parse({})),
});
export type OneOffBackup = z.infer<typeof OneOffBackupSchema>;

export const JobCreateSchema = z.object({
  name: z.string().trim().min(1).max(100),
  vcenterId: z.uuid(),
  repositoryId: z.uuid(),
  sources: z.array(JobSourceSchema).min(1, 'choose at least one VM or container'),
  transportMode: TransportModeSchema.default('automatic'),
  options: JobOptionsSchema.default(JobOptionsSchema.parse({})),
  schedule: z.string().trim().min(1).nullable().default(null),
  enabled: z.boolean().default(true),
});
export type JobCreate = z.infer<typeof JobCreateSchema>;

export const RunStatusSchema = z.enum(['queued', 'running', 'succeeded', 'warning', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof RunStatusSchema>;

/** A run or run item in one of these is not finished yet. */
export const ACTIVE_RUN_STATUSES = ['queued', 'running'] as const satisfies readonly RunStatus[];
export const TERMINAL_RUN_STATUSES = ['succeeded', 'warning', 'failed', 'cancelled'] as const satisfies readonly RunStatus[];
export const isTerminalStatus = (status: RunStatus): boolean => (TERMINAL_RUN_STATUSES as readonly RunStatus[]).includes(status);

/**
 * A run's status from its items' once none is active, else null: one failed item fails the run, then
 * one cancelled cancels it, then one warning makes it a warning; otherwise it succeeded.
 */
export function settledRunStatus(items: readonly RunStatus[]): RunStatus | null {
  if (items.some((s) => !isTerminalStatus(s))) return null;
  for (const s of ['failed', 'cancelled', 'warning'] as const) if (items.includes(s)) return s;
  return 'succeeded';
}

export const TransportDecisionSchema = z.object({
  transport: TransportSchema,
  /** Why each better mode was skipped, and why this one was chosen. */
  reasons: z.array(z.string()),
});
export type TransportDecision = z.infer<typeof TransportDecisionSchema>;

/** Where a disk's time goes: busy fraction of source read, processing and target (repository or disk) write. */
export const BottleneckSchema = z.object({ source: z.number(), processing: z.number(), target: z.number() });
export type Bottleneck = z.infer<typeof BottleneckSchema>;

export const RunDiskSchema = z.object({
  id: z.string(),
  deviceKey: z.number(),
  label: z.string(),
  capacityBytes: z.number(),
  phase: z.string(),
  transport: z.string().nullable(),
  transportReason: z.array(z.string()),
  cbtUsed: z.boolean(),
  /** Backups: `changed` (an incremental: the CBT areas since the parent point) or `full`; null before the disk opens and for restores. */
  readMode: z.enum(['changed', 'full']).nullable(),
  bytesRead: z.number(),
  bytesWritten: z.number(),
  bytesSkipped: z.number(),
  /** Restores: bytes the verify pass has read back (the whole disk once verified). */
  bytesVerified: z.number(),
  /** Read speed in bytes per second: the average from start to the last tick, and the fastest second; 0 before bytes moved. */
  speed: z.object({ average: z.number(), peak: z.number() }),
  /** The last measured busy fractions, kept after the run; null before the first bytes moved. */
  bottleneck: BottleneckSchema.nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
});

export const RunVmSchema = z.object({
  id: z.string(),
  vmMoref: z.string(),
  vmName: z.string(),
  status: RunStatusSchema,
  phase: z.string(),
  /** What a long phase waits on (e.g. "vCenter is taking a quiesced snapshot — task 40 %"); null when the disks show it. */
  phaseDetail: z.string().nullable(),
  transporterId: z.string().nullable(),
  quiesced: z.boolean().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
  /** The item's run log (empty in GET /api/runs?logs=false). */
  log: z.array(z.object({ at: z.string(), level: z.string(), message: z.string() })),
  disks: z.array(RunDiskSchema),
});

export const RunSchema = z.object({
  id: z.string(),
  jobId: z.string().nullable(),
  kind: z.enum(['backup', 'restore', 'verify', 'drill', 'gc', 'copy']),
  status: RunStatusSchema,
  trigger: z.string(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
  /** Backups: the run whose failed VMs this one backs up again, and the run that retried this one's (null: none). */
  retryOf: z.string().nullable(),
  retriedBy: z.string().nullable(),
  vms: z.array(RunVmSchema),
});
export type Run = z.infer<typeof RunSchema>;

/** Queue payloads: ids only; the Transporter reads the rest from Postgres. */
export const BackupVmJobSchema = z.object({ runVmId: z.uuid() });
export type BackupVmJob = z.infer<typeof BackupVmJobSchema>;
/**
 * How many times the queue runs a backup or restore item before it stays failed. The queue retries
 * with it and the Transporter's handler reads it to know its last attempt: one constant for both.
 */
export const WORK_ATTEMPTS = 3;

export const JOB_NAMES = { backupVm: 'backup.run-vm', restoreVm: 'restore.run-vm', maintainRepository: 'repository.maintain', cleanupOrphans: 'maintenance.cleanup-orphans' } as const;

const KvmNetworkSchema = z.union([z.object({ network: z.string().min(1) }).strict(), z.object({ bridge: z.string().min(1) }).strict()]);

/** Where and how a restore to KVM/Proxmox is written (see RestoreRequestSchema.kvm). */
export const KvmRestoreTargetSchema = z.object({
  /** A folder name (not a path): the bundle goes to <KVM export folder>/<folder>, which must be new or empty. */
  folder: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/, 'a folder name of letters, digits, dot, dash and underscore (not a path)'),
  format: z.enum(['qcow2', 'raw']).default('qcow2'),
  /** vSphere network name -> libvirt network or bridge; a network not named here goes to `defaultNetwork`. */
  networks: z.record(z.string().min(1), KvmNetworkSchema).default({}),
  defaultNetwork: KvmNetworkSchema.default({ network: 'default' }),
  /** Also a Proxmox qm configuration and import script for this VMID and storage. */
  proxmox: z
    .object({
      vmid: z.number().int().min(100).max(999_999_999),
      storage: z.string().min(1).max(64),
      storageType: z.enum(['block', 'file']).default('block'),
      /** vSphere network name -> Proxmox bridge; others go to `defaultBridge`. */
      bridges: z.record(z.string().min(1), z.string().min(1)).default({}),
      defaultBridge: z.string().min(1).default('vmbr0'),
    })
    .optional(),
});
export type KvmRestoreTarget = z.infer<typeof KvmRestoreTargetSchema>;

export const RestoreRequestSchema = z
  .object({
    restorePointId: z.uuid(),
    /** Name of the new VM; it must not exist, unless `replace` confirms that VM. */
    name: z.string().trim().min(1).max(80),
    powerOn: z.boolean().default(false),
    /** Target vCenter; default: the one the restore point was backed up from. */
    vcenterId: z.uuid().optional(),
    /** Target datastore name; default: the source disks' datastore. */
    datastore: z.string().min(1).optional(),
    /** Target host (name or moref); default: the source VM's. */
    host: z.string().min(1).optional(),
    /** Target VM folder (moref, name or path like "vm/Restores"); default: the source VM's. */
    folder: z.string().min(1).optional(),
    /** Target resource pool (moref or name); default: the source VM's, or the target host's cluster's. */
    resourcePool: z.string().min(1).optional(),
    /** Source network name -> target network name; unmapped NICs keep their network. */
    networkMap: z.record(z.string().min(1), z.string().min(1)).optional(),
    /** How disks are written: automatic = HotAdd when possible, else the network (SAN is never used for writes). */
    transport: TransportModeSchema.default('automatic'),
    /** When HotAdd was asked for and fails on a disk, write that disk over the network instead. */
    failoverToNetwork: z.boolean().default(true),
    /**
     * Replace the existing VM of this name: restore under a temporary name, verify, then power the original
     * off and rename it to <name>-replaced-<UTC yyyymmdd-hhmm> (it is kept), and give the restored VM the name.
     * `confirm` must be the existing VM's exact name.
     */
    replace: z.object({ confirm: z.string().min(1) }).optional(),
    /** A restore drill: restore to this throwaway name, verify every disk, then delete the VM. */
    drill: z.boolean().default(false),
    /** Restore only this disk, as a new disk of an existing VM (moref), instead of a whole VM. */
    disk: z.object({ key: z.string().min(1), targetVm: z.string().min(1) }).optional(),
    /**
     * Restore onto KVM/Proxmox instead of vSphere: the disks (thin qcow2 or raw), a libvirt domain, a Proxmox
     * qm configuration with its import script, and NOTES on what was adapted, written by the Transporter into
     * `folder` (new or empty) under its KVM export folder (VAULTLINE_KVM_EXPORT_DIR).
     */
    kvm: KvmRestoreTargetSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.replace && r.replace.confirm !== r.name) {
      ctx.addIssue({ code: 'custom', path: ['replace', 'confirm'], message: `to replace a VM, confirm with its exact name (${r.name})` });
    }
    if (r.replace && r.drill) ctx.addIssue({ code: 'custom', path: ['replace'], message: 'a drill never replaces a VM' });
    if (r.replace && r.disk) ctx.addIssue({ code: 'custom', path: ['replace'], message: 'a disk restore adds a new disk; it never replaces a VM' });
    if (r.kvm && (r.replace || r.drill || r.disk)) ctx.addIssue({ code: 'custom', path: ['kvm'], message: 'a restore to KVM makes a new VM: it cannot replace, drill or add a disk' });
  });
export type RestoreRequest = z.infer<typeof RestoreRequestSchema>;

/** Progress of one disk, pushed at most 4 times a second. */
export const DiskProgressSchema = z.object({
  runId: z.string(),
  runVmId: z.string(),
  deviceKey: z.number(),
  phase: z.string(),
  transport: z.string().nullable(),
  bytesRead: z.number(),
  bytesWritten: z.number(),
  bytesSkipped: z.number(),
  bytesTotal: z.number(),
  /** Restores: bytes the verify pass has read back so far, and how many it reads in all (0: no verify pass). */
  bytesVerified: z.number().default(0),
  verifyTotal: z.number().default(0),
  /** Bytes read per second since the disk started (its average so far). */
  bytesPerSecond: z.number(),
  /** The fastest second so far (windows of a second; a disk done sooner counts its whole time). */
  peakBytesPerSecond: z.number(),
  etaSeconds: z.number().nullable(),
  /** Where time goes: busy fraction of source read, processing and repository write. */
  bottleneck: BottleneckSchema,
});
export type DiskProgress = z.infer<typeof DiskProgressSchema>;
