export { loadEnv, loadEnvOrExit, ConfigError, formatConfigError } from './env.ts';
export type { VaultlineEnv } from './env.ts';
export { sealSecret, openSecret, SecretError } from './secrets.ts';
export { generateRecipientKeyPair, recipientPublicKey, sealTo, openSealedTo, type RecipientKeyPair } from './sealed-to.ts';
export { freePort } from './net.ts';
