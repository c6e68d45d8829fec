export { SECRET_LABELS, applianceKeyUnsealer } from './secrets.ts';
export type { SecretLabel, Unsealer } from './secrets.ts';
export { backendFor, formatS3Location, identityColumns, openRepository, recordedIdentity, RepositoryLocationError, resolveLocalLocation, unsealRepository } from './repositories.ts';
export type { RepositoryRow } from './repositories.ts';
export { loadSecretKey } from './secret-key.ts';
export { applyRetention } from './retention.ts';
export type { RetentionScope, RetentionOutcome } from './retention.ts';
export { canonicalJson, commandLine, deviceMatching, DEVICE_PATTERNS, journalMac, journalMacValid, JournalTrustError, JOURNAL_KEY_FILE, loadJournalKey, pathUnder } from './journal-trust.ts';
