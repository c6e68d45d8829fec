import { z } from 'zod';

/** An SSH host key fingerprint as `ssh-keygen -lf <key>.pub` prints it: `SHA256:` and 43 base64 characters. */
export const HostKeyFingerprintSchema = z
  .string()
  .trim()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'an SSH host key fingerprint as ssh-keygen -l prints it: SHA256:<43 base64 characters>');

const InstallDirSchema = z
  .string()
  .trim()
  .max(200)
  .regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'an absolute folder of letters, digits and . _ - /')
  .refine((p) => !p.split('/').includes('..'), 'no .. in the install folder');

/** Add a remote Transporter. The first call (without hostKeySha256) only answers with the host key to confirm. */
export const RemoteTransporterCreateSchema = z
  .object({
    name: z.string().trim().min(1).max(100).regex(/^[A-Za-z0-9 ._-]+$/, 'letters, digits, spaces and . _ -'),
    host: z.string().trim().min(1).max(253).regex(/^[A-Za-z0-9.:-]+$/, 'a host name or IP address'),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().trim().min(1).max(64).regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a Linux user name'),
    /** OpenSSH or PEM private key; or give a password instead. */
    privateKey: z.string().min(1).max(16_384).optional(),
    passphrase: z.string().min(1).max(1024).optional(),
    password: z.string().min(1).max(1024).optional(),
    /** The fingerprint the admin confirmed; omit on first contact to be told what it is. */
    hostKeySha256: HostKeyFingerprintSchema.optional(),
    /** Where to install; default /opt/vaultline-transporter as root, ~/.vaultline-transporter otherwise. */
    installDir: InstallDirSchema.optional(),
  })
  .refine((b) => Boolean(b.privateKey) !== Boolean(b.password), { message: 'give either privateKey or password', path: ['privateKey'] })
  .refine((b) => !b.passphrase || b.privateKey, { message: 'a passphrase belongs to a privateKey', path: ['passphrase'] });
export type RemoteTransporterCreate = z.infer<typeof RemoteTransporterCreateSchema>;

/** Pin a new host key (after the host was reinstalled): confirm-then-pin, as when adding. */
export const HostKeyConfirmSchema = z.object({ hostKeySha256: HostKeyFingerprintSchema.optional() });

export const RemoteRemoveQuerySchema = z.object({
  /** Delete the row even when the host cannot be reached or cleaned up (says what may be left there). */
  force: z.enum(['true', 'false', '1', '0']).optional().transform((v) => v === 'true' || v === '1'),
});

export const SupervisorSchema = z.enum(['systemd', 'process']);

export const RemoteTransporterSchema = z.object({
  id: z.string(),
  name: z.string(),
  host: z.string(),
  port: z.number(),
  username: z.string(),
  auth: z.enum(['key', 'password']),
  hostKeySha256: z.string(),
  installDir: z.string().nullable(),
  deployedVersion: z.string().nullable(),
  deployedDigest: z.string().nullable(),
  supervisor: SupervisorSchema.nullable(),
  deployedAt: z.string().nullable(),
  registeredAt: z.string(),
});
export type RemoteTransporter = z.infer<typeof RemoteTransporterSchema>;

/** What a host offered when it was checked (add, deploy). */
export const RemoteHostCheckSchema = z.object({
  os: z.string(),
  machine: z.string(),
  glibc: z.string().nullable(),
  user: z.string(),
  root: z.boolean(),
  systemd: z.boolean(),
  installDir: z.string(),
  freeBytes: z.number(),
  neededBytes: z.number(),
});
export type RemoteHostCheck = z.infer<typeof RemoteHostCheckSchema>;

export const RemoteTransporterStatusSchema = RemoteTransporterSchema.extend({
  /** From the registry, as /api/transporters lists it. */
  online: z.boolean(),
  lastHeartbeat: z.string().nullable(),
  /** From the host over SSH; null when it could not be asked (see problem). */
  process: z
    .object({
      running: z.boolean(),
      pid: z.number().nullable(),
      installedVersion: z.string().nullable(),
      installedDigest: z.string().nullable(),
      runningFrom: z.string().nullable(),
      supervisor: SupervisorSchema.nullable(),
    })
    .nullable(),
  /** The appliance's current version, and whether an upgrade would redeploy. */
  applianceVersion: z.string(),
  upgradeAvailable: z.boolean(),
  problem: z.string().optional(),
});
export type RemoteTransporterStatus = z.infer<typeof RemoteTransporterStatusSchema>;

export const RemoteDeployResultSchema = z.object({
  transporter: RemoteTransporterSchema,
  supervisor: SupervisorSchema,
  version: z.string(),
  installDir: z.string(),
  pid: z.number().nullable(),
  online: z.boolean(),
  changed: z.boolean(),
  message: z.string(),
  check: RemoteHostCheckSchema.optional(),
});
export type RemoteDeployResult = z.infer<typeof RemoteDeployResultSchema>;

const AddressSchema = z
  .string()
  .trim()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'host or host:port');

/**
 * The addresses remote Transporters use for PostgreSQL and Redis (host or host:port), when the
 * Director's own (often 127.0.0.1) are not reachable from them. Credentials, database name and
 * options stay the Director's. null = the Director's own address.
 */
export const TransporterEndpointsSchema = z.object({
  databaseAddress: AddressSchema.nullable().default(null),
  redisAddress: AddressSchema.nullable().default(null),
});
export type TransporterEndpoints = z.infer<typeof TransporterEndpointsSchema>;

/** 409 of adding a remote Transporter or re-pinning its key without hostKeySha256: the key presented, to confirm. */
export const HostKeyConfirmationSchema = z.object({
  code: z.literal('host_key_confirmation_required'),
  message: z.string(),
  hostKeySha256: z.string(),
  keyType: z.string(),
});
export type HostKeyConfirmation = z.infer<typeof HostKeyConfirmationSchema>;

/** 201 of POST /api/transporters/remote. */
export const RemoteAddResultSchema = z.object({ transporter: RemoteTransporterSchema, check: RemoteHostCheckSchema });
export type RemoteAddResult = z.infer<typeof RemoteAddResultSchema>;

export const RemoteRestartResultSchema = z.object({ pid: z.number().nullable(), running: z.boolean(), online: z.boolean(), supervisor: SupervisorSchema.nullable() });
export type RemoteRestartResult = z.infer<typeof RemoteRestartResultSchema>;

/** cleaned: false when the host could not be cleaned (forced); message says what may be left there. */
export const RemoteRemoveResultSchema = z.object({ ok: z.literal(true), cleaned: z.boolean(), message: z.string() });
export type RemoteRemoveResult = z.infer<typeof RemoteRemoveResultSchema>;

/** GET /api/settings/transporter-endpoints: the addresses, and the URLs remote Transporters get (credentials hidden). */
export const TransporterEndpointsViewSchema = z.object({
  databaseAddress: z.string().nullable(),
  redisAddress: z.string().nullable(),
  databaseUrl: z.string(),
  redisUrl: z.string(),
});
export type TransporterEndpointsView = z.infer<typeof TransporterEndpointsViewSchema>;
