export { SECRET_LABELS, applianceKeyUnsealer } from './secrets.ts';
export type { SecretLabel, Unsealer } from './secrets.ts';
export { backendFor, openRepository, unsealRepository } from './repositories.ts';
export type { RepositoryRow } from './repositories.ts';
export { loadSecretKey } from './secret-key.ts';
export { applyRetention } from './retention.ts';
export type { RetentionScope, RetentionOutcome } from './retention.ts';
