import { z } from 'zod';

/** Colon-separated upper-case hex of a SHA-256 certificate digest. */
export const ThumbprintSchema = z
  .string()
  .transform((s) => s.trim().toUpperCase().replace(/[^0-9A-F]/g, '').replace(/(..)(?!$)/g, '$1:'))
  .refine((s) => /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(s), 'a SHA-256 thumbprint: 32 bytes as hex');

export const VCenterCreateSchema = z.object({
  name: z.string().trim().min(1).max(100),
  url: z.url({ protocol: /^https?$/ }),
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  /** The certificate thumbprint the operator confirmed. Omit on first contact to be told what it is. */
  thumbprintSha256: ThumbprintSchema.optional(),
  /** Plain HTTP (lab only). */
  allowHttp: z.boolean().default(false),
});
export type VCenterCreate = z.infer<typeof VCenterCreateSchema>;

export const VCenterSchema = z.object({
  id: z.string(),
  name: z.string(),
  url: z.string(),
  username: z.string(),
  thumbprintSha256: z.string().nullable(),
  isLab: z.boolean(),
  createdAt: z.string(),
});
export type VCenter = z.infer<typeof VCenterSchema>;

export const InventoryDiskSchema = z.object({
  key: z.number(),
  label: z.string(),
  capacityBytes: z.number(),
  fileName: z.string(),
  datastore: z.string().optional(),
  controller: z.string(),
  busNumber: z.number().optional(),
  unitNumber: z.number().optional(),
  thin: z.boolean().optional(),
  diskMode: z.string().optional(),
});

export const InventoryVmSchema = z.object({
  moref: z.string(),
  name: z.string(),
  instanceUuid: z.string().optional(),
  biosUuid: z.string().optional(),
  powerState: z.string(),
  guestId: z.string().optional(),
  cpus: z.number().optional(),
  memoryMiB: z.number().optional(),
  host: z.string().optional(),
  changeTrackingEnabled: z.boolean(),
  disks: z.array(InventoryDiskSchema),
  /** The VM's datacenter (moref). */
  datacenter: z.string().optional(),
  /** The cluster of its host (moref), when the host is in one. */
  cluster: z.string().optional(),
  /** Its VM folder (moref) and that folder's path ("DC0/vm/Apps"). */
  folder: z.string().optional(),
  folderPath: z.string().optional(),
  /** Every container that holds it now (morefs): datacenter, VM folders up to the datacenter's, cluster, host; and the ids of its tags. */
  containers: z.array(z.string()).optional(),
});
export type InventoryVm = z.infer<typeof InventoryVmSchema>;

/** What a job can take as a source besides single VMs: its VMs are read again at every run. */
export const ContainerKindSchema = z.enum(['datacenter', 'cluster', 'host', 'folder', 'tag']);
export type ContainerKind = z.infer<typeof ContainerKindSchema>;

/**
 * A datacenter, cluster, host or VM folder. `path` is its inventory path ("DC0/DC0_C0/DC0_C0_H0",
 * "DC0/vm/Apps"); `parent` is the container above it in its tree (datacenter → cluster → host, or
 * datacenter → folders), null for a datacenter. A tag (kind `tag`) has path "Category/Tag", no parent and
 * datacenter '' (tags are vCenter-wide).
 */
export const InventoryContainerSchema = z.object({
  kind: ContainerKindSchema,
  moref: z.string(),
  name: z.string(),
  path: z.string(),
  parent: z.string().nullable(),
  datacenter: z.string(),
});
export type InventoryContainer = z.infer<typeof InventoryContainerSchema>;

/** GET /api/vcenters/:id/inventory: the VMs and the containers they are in, read now. */
export const InventoryTreeSchema = z.object({
  vms: z.array(InventoryVmSchema),
  containers: z.array(InventoryContainerSchema),
  /** Why the tree has no tags (vCenter's tagging service could not be read); absent when it has them. */
  tagsError: z.string().optional(),
});
export type InventoryTree = z.infer<typeof InventoryTreeSchema>;

/**
 * GET /api/vcenters/:id/placement: where a restored VM can go. Names are what a restore request takes
 * (host, folder path, resource pool, datastore, network); morefs disambiguate.
 */
export const PlacementTargetsSchema = z.object({
  hosts: z.array(
    z.object({ moref: z.string(), name: z.string(), datacenter: z.string(), cluster: z.string().nullable(), connectionState: z.string().nullable(), inMaintenanceMode: z.boolean() }),
  ),
  folders: z.array(z.object({ moref: z.string(), name: z.string(), datacenter: z.string(), path: z.string() })),
  resourcePools: z.array(z.object({ moref: z.string(), name: z.string(), datacenter: z.string(), hosts: z.array(z.string()) })),
  datastores: z.array(
    z.object({ moref: z.string(), name: z.string(), datacenter: z.string(), type: z.string(), capacityBytes: z.number(), freeBytes: z.number(), accessible: z.boolean(), hosts: z.array(z.string()) }),
  ),
  networks: z.array(z.object({ moref: z.string(), name: z.string(), datacenter: z.string() })),
});
export type PlacementTargets = z.infer<typeof PlacementTargetsSchema>;

/** 409 of POST /api/vcenters without thumbprintSha256: the certificate presented, to confirm and send back. */
export const ThumbprintConfirmationSchema = z.object({
  code: z.literal('thumbprint_confirmation_required'),
  message: z.string(),
  thumbprintSha256: z.string(),
  thumbprintSha1: z.string(),
});
export type ThumbprintConfirmation = z.infer<typeof ThumbprintConfirmationSchema>;
