export * from './auth.ts';
export * from './health.ts';
export * from './transporters.ts';
export * from './errors.ts';
export * from './vcenters.ts';
export * from './repositories.ts';
export * from './jobs.ts';
export * from './drills.ts';
