export * from './auth.ts';
export * from './health.ts';
export * from './transporters.ts';
export * from './errors.ts';
