import { defineConfig } from 'prisma/config';

// The CLI is used for `prisma generate` only (offline, no engine needed);
// migrations are applied by @vaultline/db's own migrator.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' },
});
