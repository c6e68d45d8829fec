import { z } from 'zod';

/** What a Transporter announces about itself on every heartbeat. */
export const TransporterInfoSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  host: z.string().min(1),
  version: z.string(),
  pid: z.number().int(),
  startedAt: z.string(),
  capabilities: z.object({
    transports: z.array(z.enum(['san', 'hotadd', 'nbdssl', 'nbd'])),
    maxDiskTasks: z.number().int(),
    proxyVmUuid: z.string().optional(),
    /** Present when it serves instant recoveries (VAULTLINE_NFS_ADDRESS): the NFS address ESXi hosts mount from. */
    instantRecovery: z.object({ nfsAddress: z.string().min(1) }).optional(),
  }),
});
export type TransporterInfo = z.infer<typeof TransporterInfoSchema>;

export const TransporterStatusSchema = TransporterInfoSchema.extend({
  online: z.boolean(),
  lastHeartbeat: z.string(),
});
export type TransporterStatus = z.infer<typeof TransporterStatusSchema>;

/** A Transporter counts as offline after missing this many heartbeats. */
export const HEARTBEATS_BEFORE_OFFLINE = 3;
