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

export interface BrowsePartitionDto {
  id: string;
  disk: string;
  /** Number in the partition table; 0 for a filesystem on the whole disk. */
  number: number;
  offsetBytes: number;
  sizeBytes: number;
  /** GPT type GUID or MBR type ("0x83"). */
  partitionType: string | null;
  partitionName: string | null;
  /** As blkid names it: ext4, xfs, btrfs, vfat, ntfs, LVM2_member, BitLocker, … */
  filesystem: string | null;
  label: string | null;
  uuid: string | null;
  mounted: boolean;
  driver?: string;
  /** Why it could not be mounted (unsupported, encrypted, no filesystem, mount error). */
  reason?: string;
}

export interface BrowseSessionDto {
  session: string;
  restorePointId: string;
  createdAt: string;
  idleTimeoutSeconds: number;
  /** The session is closed then even while in use (VAULTLINE_FLR_MAX_HOURS after it was opened). */
  expiresAt: string;
  disks: Array<{ key: string; capacityBytes: number; partitionTable: string; partitions: BrowsePartitionDto[] }>;
}

export type BrowseEntryType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'other';

export interface BrowseEntryDto {
  name: string;
  /** base64url of the raw path from the partition root; accepted as `ref`. */
  ref: string;
  type: BrowseEntryType;
  size: number;
  mtime: string;
  /** Permission bits, octal ("0644"). */
  mode: string;
  /** A symbolic link's target as stored; links are never followed. */
  target?: string;
  /** The raw name is not UTF-8: `name` shows replacement characters, use `ref`. */
  nameLossy?: true;
}

export interface BrowseListingDto {
  path: string;
  ref: string;
  total: number;
  entries: BrowseEntryDto[];
  nextCursor: string | null;
}
