/** Request bodies as a client may send them (fields with defaults may be left out). */
import type { z } from 'zod';
import type { JobCreateSchema } from './jobs.ts';
import type { VCenterCreateSchema } from './vcenters.ts';
import type { JobOptionsSchema } from './jobs.ts';

export type JobCreateInput = z.input<typeof JobCreateSchema>;
export type VCenterCreateInput = z.input<typeof VCenterCreateSchema>;
export type JobOptionsInput = z.input<typeof JobOptionsSchema>;
