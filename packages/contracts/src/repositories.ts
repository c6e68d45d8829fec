import { z } from 'zod';

export const RepositoryCreateSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('local'),
    name: z.string().trim().min(1).max(100),
    /** Absolute path on the Transporters' filesystem. */
    location: z.string().startsWith('/', 'an absolute path'),
    passphrase: z.string().min(8).max(1024).optional(),
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
]);
export type RepositoryCreate = z.infer<typeof RepositoryCreateSchema>;

export const RepositorySchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['local', 'sftp']),
  location: z.string(),
  encrypted: z.boolean(),
  createdAt: z.string(),
});
export type RepositoryDto = z.infer<typeof RepositorySchema>;

/** 409 of POST /api/repositories (SFTP) without hostKeySha256: the SSH host key presented, to confirm and send back. */
export const SftpHostKeyConfirmationSchema = z.object({
  code: z.literal('host_key_confirmation_required'),
  message: z.string(),
  hostKeySha256: z.string(),
});
