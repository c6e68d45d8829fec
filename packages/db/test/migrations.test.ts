import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyMigrations,
  checkSchemaDrift,
  createDb,
  MIGRATIONS_DIR,
  SCHEMA_PATH,
} from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../src/testing.ts';

const SERVER = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

describe('migrations against real PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(SERVER);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('applies every migration once and is idempotent', async () => {
    const first = await applyMigrations(db.url, MIGRATIONS_DIR);
    expect(first.applied.length).toBeGreaterThan(0);
    const second = await applyMigrations(db.url, MIGRATIONS_DIR);
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toBe(first.applied.length);
  });

  it('leaves the database exactly as schema.prisma describes (drift check)', async () => {
    expect(await checkSchemaDrift(db.url, SCHEMA_PATH)).toEqual([]);
  });

  it('the drift check fails when a column is added to schema.prisma without a migration', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-drift-'));
    try {
      const schema = await readFile(SCHEMA_PATH, 'utf8');
      const edited = schema.replace(/(model User \{\n)/, '$1  nickname String?\n');
      expect(edited).not.toBe(schema);
      const copy = path.join(dir, 'schema.prisma');
      await writeFile(copy, edited);
      const drift = await checkSchemaDrift(db.url, copy);
      expect(drift).toEqual(['column users.nickname is in schema.prisma but not in the database (text null)']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a migration edited after it was applied', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vaultline-mig-'));
    try {
      const { readdir, mkdir } = await import('node:fs/promises');
      for (const name of await readdir(MIGRATIONS_DIR)) {
        if (!/^\d{14}_/.test(name)) continue;
        await mkdir(path.join(dir, name));
        await copyFile(path.join(MIGRATIONS_DIR, name, 'migration.sql'), path.join(dir, name, 'migration.sql'));
      }
      const first = (await readdir(dir)).sort()[0]!;
      await writeFile(path.join(dir, first, 'migration.sql'), '-- edited\n', { flag: 'a' });
      await expect(applyMigrations(db.url, dir)).rejects.toThrow(/was changed after it was applied/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the generated client works through the pg adapter (no engine binary)', async () => {
    const prisma = createDb(db.url);
    try {
      const user = await prisma.user.create({ data: { username: 'alice', passwordHash: 'x', role: 'admin' } });
      expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(await prisma.user.count()).toBe(1);
    } finally {
      await prisma.$disconnect();
    }
  });
});
