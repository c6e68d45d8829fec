import path from 'node:path';
import { fileURLToPath } from 'node:url';

export * from './client.ts';
export { applyMigrations, readMigrations, MigrationError } from './migrate.ts';
export type { MigrateResult, MigrationFile } from './migrate.ts';
export { checkSchemaDrift, expectedShape, actualShape, diffShapes } from './drift.ts';
export type { SchemaShape } from './drift.ts';
export { ensureDatabase, pingDatabase } from './server.ts';
// Test helpers: '@vaultline/db/testing'.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** prisma/ at the repository root (schema + migrations). */
export const PRISMA_DIR = path.join(root, 'prisma');
export const MIGRATIONS_DIR = path.join(PRISMA_DIR, 'migrations');
export const SCHEMA_PATH = path.join(PRISMA_DIR, 'schema.prisma');
