import { z } from 'zod';

export const RepositoryCreateSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('local'),
    name: z.string().trim().min(1).max(100),
    /** Absolute path on the Transporters' filesystem. */
    location: z.string().startsWith('/', 'an absolute path'),
    passphrase: z.string().min(8).max(1024).optional(),
    /**
     * Hardened: the files of restore points locked by their job's immutability are made immutable on the
     * filesystem (chattr +i) until then, so nobody but root can delete them early. Needs root and a
     * filesystem with the immutable attribute (ext4, XFS, Btrfs).
     */
    hardened: z.boolean().default(false),
  }),
  z.object({
    kind: z.literal('sftp'),
    name: z.string().trim().min(1).max(100),
    /** sftp://user@host:port/absolute/path */
    location: z.string().regex(/^sftp:\/\/[^@/]+@[^/:]+(:\d+)?\/.+/, 'sftp://user@host[:port]/path'),
    privateKey: z.string().min(1),
    hostKeySha256: z.string().optional(),
    passphrase: z.string().min(8).max(1024).optional(),
  }),
  z.object({
    kind: z.literal('s3'),
    name: z.string().trim().min(1).max(100),
    /** The S3 service, e.g. https://s3.example.com; absent for AWS itself. */
    endpoint: z.string().regex(/^https?:\/\/[^\s/]+(\/.*)?$/, 'an http(s) URL').optional(),
    region: z.string().trim().min(1).max(64).default('us-east-1'),
    /** An existing bucket; created with Object Lock for immutable restore points. */
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3–63 lowercase letters, digits, dots, hyphens)'),
    /** The repository's folder in the bucket. */
    prefix: z
      .string()
      .max(512)
      .refine((p) => !p.startsWith('/') && !p.split('/').some((part) => part === '.' || part === '..'), 'a relative folder, without . or .. parts')
      .default(''),
    accessKeyId: z.string().trim().min(1).max(128),
    secretAccessKey: z.string().min(1).max(256),
    passphrase: z.string().min(8).max(1024).optional(),
  }),
  z.object({
    kind: z.literal('transporter'),
    name: z.string().trim().min(1).max(100),
    /**
     * A folder another Transporter serves (its VAULTLINE_SERVE_REPOSITORIES) over mutual TLS: the Transporters writing
     * to it hold the keys, the serving one only stores sealed bytes and never gets the passphrase.
     */
    transporterId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a Transporter id'),
    /** The name it serves the folder under. */
    repository: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a served repository name (letters, digits, . _ -)'),
    passphrase: z.string().min(8).max(1024).optional(),
  }),
]);
export type RepositoryCreate = z.infer<typeof RepositoryCreateSchema>;

export const RepositorySchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['local', 'sftp', 's3', 'transporter']),
  location: z.string(),
  encrypted: z.boolean(),
  /** Local only: restore points' files are made immutable on the filesystem (see RepositoryCreateSchema). */
  hardened: z.boolean(),
  createdAt: z.string(),
});
export type RepositoryDto = z.infer<typeof RepositorySchema>;

/** 409 of POST /api/repositories (SFTP) without hostKeySha256: the SSH host key presented, to confirm and send back. */
export const SftpHostKeyConfirmationSchema = z.object({
  code: z.literal('host_key_confirmation_required'),
  message: z.string(),
  hostKeySha256: z.string(),
});
