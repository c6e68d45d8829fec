/** A run's throughput samples, per disk, as GET /api/runs/:id returns them for the run page's chart. */
import { z } from 'zod';
import { RunSchema } from './jobs.ts';

/** One disk's samples, column by column (a long run has a thousand per disk): when (epoch ms) and the counters then. */
export const DiskSamplesSchema = z.object({
  runDiskId: z.string(),
  at: z.array(z.number()),
  bytesRead: z.array(z.number()),
  bytesWritten: z.array(z.number()),
});
export type DiskSamples = z.infer<typeof DiskSamplesSchema>;

export const RunDetailSchema = RunSchema.extend({ samples: z.array(DiskSamplesSchema) });
export type RunDetail = z.infer<typeof RunDetailSchema>;
