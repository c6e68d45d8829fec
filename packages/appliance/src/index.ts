export { SECRET_LABELS } from './secrets.ts';
export { backendFor, identityColumns, openRepository, recordedIdentity, unsealRepository } from './repositories.ts';
export type { RepositoryRow } from './repositories.ts';
export { loadSecretKey } from './secret-key.ts';
export { applyRetention } from './retention.ts';
export type { RetentionScope, RetentionOutcome } from './retention.ts';
