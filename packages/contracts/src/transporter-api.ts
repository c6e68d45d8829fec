import { z } from 'zod';
import { TransporterStatusSchema } from './transporters.ts';

/** A Transporter as listed by GET /api/transporters: its status and what it is doing now. */
export const TransporterLoadSchema = TransporterStatusSchema.extend({
  /** VMs this Transporter is backing up or restoring right now. */
  runningVms: z.number(),
  /** Disks it is copying right now (one task each). */
  runningDisks: z.number(),
  /**
   * The repositories it serves to other Transporters (Transporter-to-Transporter transfer) and where, once its
   * certificate is issued; null when it serves none.
   */
  serves: z.object({ address: z.string(), repositories: z.array(z.string()) }).nullable(),
});
export type TransporterLoad = z.infer<typeof TransporterLoadSchema>;
