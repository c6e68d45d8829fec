/**
 * The only place that reads process.env. Every process (Director, Transporter,
 * scripts) calls loadEnv() once at boot; a bad value stops the process with one
 * message naming every bad key, and no stack trace.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  DATABASE_URL: url(['postgresql:', 'postgres:']).default('postgresql://postgres@127.0.0.1:5432/vaultline'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  /** Prefix of every Redis key and queue, so several appliances can share one Redis. */
  VAULTLINE_REDIS_NAMESPACE: z.string().regex(/^[a-zA-Z0-9_-]+$/).default('vaultline'),
  VAULTLINE_HOST: z.string().min(1).default('127.0.0.1'),
  VAULTLINE_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  VAULTLINE_DATA_DIR: z.string().min(1).default('.vaultline'),
  /** Transporter: where restores onto KVM/Proxmox are written, each into a folder of its own (default <data dir>/kvm-exports). */
  VAULTLINE_KVM_EXPORT_DIR: z.string().min(1).optional(),
  /** 32 bytes, base64 or hex; seals secrets at rest. Generated into the data dir when unset. */
  VAULTLINE_SECRET_KEY: z.string().optional(),
  VAULTLINE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Also every line at debug and above, as JSON, appended to this file (`npm start` sets one per process under .vaultline/logs). */
  VAULTLINE_LOG_FILE: z.string().min(1).optional(),
  VAULTLINE_WEB_DIST: z.string().optional(),
  /** The Director's own TLS certificate and key (PEM files; both or neither). Unset: a self-signed one is made in the data dir. */
  VAULTLINE_TLS_CERT: z.string().min(1).optional(),
  VAULTLINE_TLS_KEY: z.string().min(1).optional(),
  /** The console's address as operators reach it, for links in notifications (e.g. https://vaultline.example.com). */
  VAULTLINE_PUBLIC_URL: z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, '')).optional(),
  VAULTLINE_TRANSPORTER_ID: z.string().min(1).optional(),
  VAULTLINE_TRANSPORTER_NAME: z.string().min(1).optional(),
  /**
   * A remote Transporter's own X25519 private key (base64url, from its deploy): it opens the secrets
   * sealed to it and never holds the appliance key. Unset on the appliance's own Transporter.
   */
  VAULTLINE_TRANSPORTER_KEY: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes in base64url').optional(),
  /**
   * Director: the CA certificate (PEM file) that signed PostgreSQL's and Redis's TLS certificates; remote
   * Transporters get it to verify them (sslmode=verify-full, rediss://). Without it they cannot be deployed.
   */
  VAULTLINE_TRANSPORTER_TLS_CA: z.string().min(1).optional(),
  /**
   * Transporter: repository folders it serves to other Transporters and the Director (transfer, issue #17), as
   * `name=/absolute/folder,name2=/absolute/folder2`. Needs VAULTLINE_SERVE_ADDRESS.
   */
  VAULTLINE_SERVE_REPOSITORIES: z
    .string()
    .transform((v, ctx) => {
      const served: Record<string, string> = {};
      for (const item of v.split(',').map((s) => s.trim()).filter(Boolean)) {
        const [name = '', folder = ''] = item.split(/=(.*)/s, 2);
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(name)} is no repository name (letters, digits, . _ -; at most 128)` });
        else if (!folder.startsWith('/')) ctx.addIssue({ code: 'custom', message: `the folder of ${name} must be an absolute path (name=/folder)` });
        else if (served[name]) ctx.addIssue({ code: 'custom', message: `${name} is named twice` });
        else served[name] = folder;
      }
      if (!Object.keys(served).length) ctx.addIssue({ code: 'custom', message: 'names no repository (name=/folder,…)' });
      return served;
    })
    .optional(),
  /** Transporter: where it serves those repositories, `host:port` (`[v6]:port`; port 0 = any free port). Recorded for the others to connect to. */
  VAULTLINE_SERVE_ADDRESS: z
    .string()
    .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port (or [v6]:port)')
    .optional(),
  /**
   * Transporter: the address ESXi hosts reach it at over NFS. Set, it offers instant recovery to vSphere: it serves
   * restore points over NFSv3 (its own user-space server) on VAULTLINE_NFS_PORT and the portmapper on
   * VAULTLINE_NFS_PORTMAP_PORT, which ESXi asks first (both below 1024 by default: root or CAP_NET_BIND_SERVICE).
   */
  VAULTLINE_NFS_ADDRESS: z.string().min(1).optional(),
  VAULTLINE_NFS_PORT: z.coerce.number().int().min(1).max(65535).default(2049),
  VAULTLINE_NFS_PORTMAP_PORT: z.coerce.number().int().min(1).max(65535).default(111),
  /** Transporter: the local address its NFS server listens on (default every address; which clients may mount what is decided per export). */
  VAULTLINE_NFS_LISTEN: z.string().refine((v) => isIP(v) !== 0, 'must be an IP address').default('0.0.0.0'),
  /**
   * Transporter: IP addresses every instant recovery's export lets in, besides the addresses the ESXi host's name
   * resolves to (`10.0.5.11,10.0.5.12`): the hosts' storage VMkernel interfaces when NFS does not come from the
   * address the name stands for, or when the names do not resolve on the Transporter.
   */
  VAULTLINE_NFS_CLIENTS: z
    .string()
    .transform((v, ctx) => {
      const list = v.split(',').map((s) => s.trim()).filter(Boolean);
      for (const a of list) if (!isIP(a)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(a)} is not an IP address` });
      return list;
    })
    .optional(),
  VAULTLINE_HEARTBEAT_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  /** How long a Transporter may be silent before its job is taken over (a killed Transporter's work is retried after this). */
  VAULTLINE_JOB_LOCK_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  VAULTLINE_MAX_DISK_TASKS: z.coerce.number().int().min(1).max(64).default(6),
  VAULTLINE_NBD_STREAMS_PER_HOST: z.coerce.number().int().min(1).max(64).default(4),
  VAULTLINE_PROXY_VM_UUID: z.string().optional(),
  VAULTLINE_DEVICE_BY_ID_DIR: z.string().default('/dev/disk/by-id'),
  VAULTLINE_VCENTER_URL: z.string().optional(),
  VAULTLINE_VCENTER_USER: z.string().optional(),
  VAULTLINE_VCENTER_PASSWORD: z.string().optional(),
  VAULTLINE_VCENTER_THUMBPRINT: z.string().optional(),
  /** The vCenter given above is the lab vCenter (shown as such in the console). */
  VAULTLINE_VCENTER_LAB: z.enum(['0', '1']).default('0'),
  /** File-level restore: a browse session unused this long is closed (active downloads keep it open). */
  VAULTLINE_FLR_IDLE_MINUTES: z.coerce.number().int().min(1).max(1440).default(30),
  /** File-level restore: browse sessions open at once. */
  VAULTLINE_FLR_MAX_SESSIONS: z.coerce.number().int().min(1).max(32).default(4),
  /** A console session without requests for this long ends (besides the absolute 12 h). */
  VAULTLINE_SESSION_IDLE_MINUTES: z.coerce.number().int().min(1).max(720).default(30),
  /**
   * File-level restore: the directory the Director shares with its helper (vaultline-flr): the helper's
   * socket and token, and the Director's NBD sockets the helper reads disks from (default <data dir>/flr-run).
   */
  VAULTLINE_FLR_RUN_DIR: z.string().min(1).optional(),
  /** File-level restore helper only: its journal and mount points (default <data dir>/flr-state). */
  VAULTLINE_FLR_STATE_DIR: z.string().min(1).optional(),
  /** File-level restore: browse sessions one user may hold at once. */
  VAULTLINE_FLR_MAX_SESSIONS_PER_USER: z.coerce.number().int().min(1).max(32).default(2),
  /** File-level restore: a browse session is closed this many hours after it was opened, even while in use. */
  VAULTLINE_FLR_MAX_HOURS: z.coerce.number().int().min(1).max(168).default(8),
});

export type VaultlineEnv = z.infer<typeof EnvSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(formatConfigError(problems));
    this.name = 'ConfigError';
  }
}

export function formatConfigError(problems: { key: string; message: string }[]): string {
  const lines = problems.map((p) => `  ${p.key}: ${p.message}`);
  return `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

/** Parses the environment (process.env by default). Throws ConfigError listing every bad key. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): VaultlineEnv {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = source[key];
    // An empty variable means "use the default", as in most appliances' env files.
    raw[key] = value === '' ? undefined : value;
  }
  const result = EnvSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => ({ key: issue.path.join('.') || '(root)', message: issue.message })),
    );
  }
  return result.data;
}

/**
 * loadEnv() for a process's entry point: on a bad value it prints one message
 * naming every bad key (no stack trace) and exits with code 2.
 */
export function loadEnvOrExit(processName: string, source: NodeJS.ProcessEnv = process.env): VaultlineEnv {
  try {
    return loadEnv(source);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vaultline ${processName}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
