import { z } from 'zod';

/**
 * File-level restore: browse sessions over a restore point's disks
 * (POST /api/restore-points/:id/browse), then list, download and archive
 * files from the partitions it mounted (read-only).
 */

/** The session token: 256 random bits, base64url. Bound to the user who opened the session. */
export const BrowseSessionTokenSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'not a browse session token');

/** "d0p1": partition 1 of the restore point's first disk; "d1": a filesystem on the whole second disk. */
export const PartitionIdSchema = z.string().regex(/^d\d{1,3}(p\d{1,4})?$/, 'a partition id such as d0p1 (from the browse answer)');

const PathParams = {
  partition: PartitionIdSchema,
  /** Relative to the partition's root, '/'-separated; "" (or absent) is the root. Absolute paths and ".." are refused. */
  path: z.string().max(4096).optional(),
  /** Instead of path: the base64url of the raw path bytes, as listed (for names that are not UTF-8). */
  ref: z.string().regex(/^[A-Za-z0-9_-]*$/, 'ref is base64url').max(8192).optional(),
};

export const BrowseListQuerySchema = z.object({
  ...PathParams,
  /** nextCursor of the previous page. */
  cursor: z.string().regex(/^[A-Za-z0-9_-]*$/).max(8192).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});
export type BrowseListQuery = z.infer<typeof BrowseListQuerySchema>;

export const BrowseItemQuerySchema = z.object(PathParams);
export type BrowseItemQuery = z.infer<typeof BrowseItemQuerySchema>;

export const BrowsePartitionSchema = z.object({
  id: z.string(),
  disk: z.string(),
  /** Number in the partition table; 0 for a filesystem on the whole disk. */
  number: z.number(),
  offsetBytes: z.number(),
  sizeBytes: z.number(),
  /** GPT type GUID or MBR type ("0x83"). */
  partitionType: z.string().nullable(),
  partitionName: z.string().nullable(),
  /** As blkid names it: ext4, xfs, btrfs, vfat, ntfs, LVM2_member, BitLocker, … */
  filesystem: z.string().nullable(),
  label: z.string().nullable(),
  uuid: z.string().nullable(),
  mounted: z.boolean(),
  driver: z.string().optional(),
  /** Why it could not be mounted (unsupported, encrypted, no filesystem, mount error). */
  reason: z.string().optional(),
});
export type BrowsePartitionDto = z.infer<typeof BrowsePartitionSchema>;

export const BrowseSessionSchema = z.object({
  session: z.string(),
  restorePointId: z.string(),
  createdAt: z.string(),
  idleTimeoutSeconds: z.number(),
  /** The session is closed then even while in use (VAULTLINE_FLR_MAX_HOURS after it was opened). */
  expiresAt: z.string(),
  disks: z.array(z.object({ key: z.string(), capacityBytes: z.number(), partitionTable: z.string(), partitions: z.array(BrowsePartitionSchema) })),
});
export type BrowseSessionDto = z.infer<typeof BrowseSessionSchema>;

export const BrowseEntryTypeSchema = z.enum(['file', 'directory', 'symlink', 'fifo', 'socket', 'char-device', 'block-device', 'other']);
export type BrowseEntryType = z.infer<typeof BrowseEntryTypeSchema>;

export const BrowseEntrySchema = z.object({
  name: z.string(),
  /** base64url of the raw path from the partition root; accepted as `ref`. */
  ref: z.string(),
  type: BrowseEntryTypeSchema,
  size: z.number(),
  mtime: z.string(),
  /** Permission bits, octal ("0644"). */
  mode: z.string(),
  /** A symbolic link's target as stored; links are never followed. */
  target: z.string().optional(),
  /** The raw name is not UTF-8: `name` shows replacement characters, use `ref`. */
  nameLossy: z.literal(true).optional(),
});
export type BrowseEntryDto = z.infer<typeof BrowseEntrySchema>;

export const BrowseListingSchema = z.object({
  path: z.string(),
  ref: z.string(),
  total: z.number(),
  entries: z.array(BrowseEntrySchema),
  nextCursor: z.string().nullable(),
});
export type BrowseListingDto = z.infer<typeof BrowseListingSchema>;
