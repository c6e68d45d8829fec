/**
 * Compares what prisma/schema.prisma describes with what the migrated database
 * holds: enums, tables, columns (type, nullability), primary keys, indexes and
 * foreign keys. The schema side comes from Prisma's own parser (WASM, no engine),
 * the database side from the Postgres catalogs. Any difference means a
 * migration is missing or wrong.
 */
import { readFile } from 'node:fs/promises';
import pg from 'pg';

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: 'scalar' | 'enum' | 'object' | 'unsupported';
  type: string;
  isRequired: boolean;
  isList: boolean;
  nativeType?: [string, string[]] | null;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}
interface DmmfIndex {
  model: string;
  type: 'id' | 'unique' | 'normal' | 'fulltext';
  dbName?: string | null;
  fields: { name: string }[];
}
interface Dmmf {
  datamodel: { models: DmmfModel[]; enums: { name: string; dbName?: string | null; values: { name: string; dbName?: string | null }[] }[]; indexes: DmmfIndex[] };
}

export interface SchemaShape {
  enums: Record<string, string[]>;
  /** table → column → "type [null|not null]" */
  tables: Record<string, Record<string, string>>;
  /** "table.index_name" → "unique|index|primary (col, col)" */
  indexes: Record<string, string>;
  /** "table.constraint" → "(cols) → table(cols) on delete X" */
  foreignKeys: Record<string, string>;
}

const quoteIdent = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name}"`);

function columnType(field: DmmfField, enumNames: Map<string, string>): string {
  if (field.kind === 'enum') return quoteIdent(enumNames.get(field.type) ?? field.type) + (field.isList ? '[]' : '');
  const [native, args = []] = field.nativeType ?? [];
  let t: string;
  switch (field.type) {
    case 'String':
      t = native === 'Uuid' ? 'uuid' : native === 'VarChar' ? `character varying(${args[0]})` : native === 'Char' ? `character(${args[0]})` : 'text';
      break;
    case 'Int':
      t = 'integer';
      break;
    case 'BigInt':
      t = 'bigint';
      break;
    case 'Boolean':
      t = 'boolean';
      break;
    case 'Float':
      t = 'double precision';
      break;
    case 'Decimal':
      t = native === 'Decimal' ? `numeric(${args.join(',')})` : 'numeric(65,30)';
      break;
    case 'Json':
      t = native === 'Json' ? 'json' : 'jsonb';
      break;
    case 'Bytes':
      t = 'bytea';
      break;
    case 'DateTime':
      t = native === 'Timestamptz' ? `timestamp(${args[0] ?? 6}) with time zone` : native === 'Date' ? 'date' : `timestamp(${args[0] ?? 3}) without time zone`;
      break;
    default:
      t = `unknown:${field.type}`;
  }
  return field.isList ? `${t}[]` : t;
}

/** The shape schema.prisma asks for. */
export async function expectedShape(schemaPath: string): Promise<SchemaShape> {
  const prismaSchema = await readFile(schemaPath, 'utf8');
  // Loaded here, not at the top: it is a development dependency, and @vaultline/db's runtime users
  // (a Transporter bundle deployed to another host) do not have it.
  const { default: wasm } = await import('@prisma/prisma-schema-wasm');
  const dmmf = JSON.parse(wasm.get_dmmf(JSON.stringify({ prismaSchema }))) as Dmmf;
  const shape: SchemaShape = { enums: {}, tables: {}, indexes: {}, foreignKeys: {} };
  const enumNames = new Map(dmmf.datamodel.enums.map((e) => [e.name, e.dbName ?? e.name]));
  for (const e of dmmf.datamodel.enums) shape.enums[e.dbName ?? e.name] = e.values.map((v) => v.dbName ?? v.name);

  const tableOf = new Map(dmmf.datamodel.models.map((m) => [m.name, m.dbName ?? m.name]));
  const columnOf = (model: DmmfModel, field: string) => {
    const f = model.fields.find((x) => x.name === field);
    return f?.dbName ?? field;
  };
  for (const model of dmmf.datamodel.models) {
    const table = model.dbName ?? model.name;
    const cols: Record<string, string> = {};
    for (const f of model.fields) {
      if (f.kind === 'object') {
        if (f.relationFromFields && f.relationFromFields.length > 0) {
          const target = dmmf.datamodel.models.find((m) => m.name === f.type);
          const fromCols = f.relationFromFields.map((c) => columnOf(model, c));
          const toCols = (f.relationToFields ?? []).map((c) => (target ? columnOf(target, c) : c));
          const onDelete = (f.relationOnDelete ?? (f.isRequired ? 'Restrict' : 'SetNull')).replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
          shape.foreignKeys[`${table}.${table}_${fromCols.join('_')}_fkey`] =
            `(${fromCols.join(', ')}) -> ${tableOf.get(f.type)}(${toCols.join(', ')}) on delete ${onDelete}`;
        }
        continue;
      }
      cols[f.dbName ?? f.name] = `${columnType(f, enumNames)} ${f.isRequired ? 'not null' : 'null'}`;
    }
    shape.tables[table] = cols;
  }
  for (const idx of dmmf.datamodel.indexes) {
    const model = dmmf.datamodel.models.find((m) => m.name === idx.model);
    if (!model) continue;
    const table = model.dbName ?? model.name;
    const cols = idx.fields.map((f) => columnOf(model, f.name));
    const suffix = idx.type === 'id' ? 'pkey' : idx.type === 'unique' ? 'key' : 'idx';
    const name = idx.dbName ?? (idx.type === 'id' ? `${table}_pkey` : `${table}_${cols.join('_')}_${suffix}`);
    const kind = idx.type === 'id' ? 'primary' : idx.type === 'unique' ? 'unique' : 'index';
    shape.indexes[`${table}.${name}`] = `${kind} (${cols.join(', ')})`;
  }
  return shape;
}

/** The shape the database actually has (schema `public`, Prisma's bookkeeping table excluded). */
export async function actualShape(databaseUrl: string): Promise<SchemaShape> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const shape: SchemaShape = { enums: {}, tables: {}, indexes: {}, foreignKeys: {} };
    const enums = await client.query<{ name: string; value: string }>(
      `SELECT t.typname AS name, e.enumlabel AS value FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
       JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' ORDER BY t.typname, e.enumsortorder`,
    );
    for (const r of enums.rows) (shape.enums[r.name] ??= []).push(r.value);

    const cols = await client.query<{ table: string; column: string; type: string; notnull: boolean }>(
      `SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> '_prisma_migrations'
       ORDER BY c.relname, a.attnum`,
    );
    for (const r of cols.rows) (shape.tables[r.table] ??= {})[r.column] = `${r.type} ${r.notnull ? 'not null' : 'null'}`;

    const idx = await client.query<{ table: string; name: string; unique: boolean; primary: boolean; columns: string[] }>(
      `SELECT t.relname AS table, i.relname AS name, ix.indisunique AS unique, ix.indisprimary AS primary,
              array(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
       FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       WHERE n.nspname = 'public' AND t.relname <> '_prisma_migrations'`,
    );
    for (const r of idx.rows) {
      const kind = r.primary ? 'primary' : r.unique ? 'unique' : 'index';
      shape.indexes[`${r.table}.${r.name}`] = `${kind} (${r.columns.join(', ')})`;
    }

    const fks = await client.query<{ table: string; name: string; cols: string[]; ref: string; refcols: string[]; del: string }>(
      `SELECT t.relname AS table, c.conname AS name, rt.relname AS ref,
              array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
              array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols,
              c.confdeltype AS del
       FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class rt ON rt.oid = c.confrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.contype = 'f' AND n.nspname = 'public'`,
    );
    const actions: Record<string, string> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };
    for (const r of fks.rows) {
      shape.foreignKeys[`${r.table}.${r.name}`] = `(${r.cols.join(', ')}) -> ${r.ref}(${r.refcols.join(', ')}) on delete ${actions[r.del] ?? r.del}`;
    }
    return shape;
  } finally {
    await client.end();
  }
}

/** Human-readable differences; empty when schema and database agree. */
export function diffShapes(expected: SchemaShape, actual: SchemaShape): string[] {
  const out: string[] = [];
  const compare = (what: string, e: Record<string, string>, a: Record<string, string>) => {
    for (const [k, v] of Object.entries(e)) {
      if (!(k in a)) out.push(`${what} ${k} is in schema.prisma but not in the database (${v})`);
      else if (a[k] !== v) out.push(`${what} ${k} differs: schema.prisma says "${v}", database has "${a[k]}"`);
    }
    for (const [k, v] of Object.entries(a)) if (!(k in e)) out.push(`${what} ${k} is in the database but not in schema.prisma (${v})`);
  };
  compare(
    'enum',
    Object.fromEntries(Object.entries(expected.enums).map(([k, v]) => [k, v.join(',')])),
    Object.fromEntries(Object.entries(actual.enums).map(([k, v]) => [k, v.join(',')])),
  );
  for (const table of Object.keys(expected.tables)) if (!actual.tables[table]) out.push(`table ${table} is in schema.prisma but not in the database`);
  for (const table of Object.keys(actual.tables)) if (!expected.tables[table]) out.push(`table ${table} is in the database but not in schema.prisma`);
  for (const [table, cols] of Object.entries(expected.tables)) {
    const have = actual.tables[table];
    if (!have) continue;
    compare('column', prefix(table, cols), prefix(table, have));
  }
  compare('index', expected.indexes, actual.indexes);
  compare('foreign key', expected.foreignKeys, actual.foreignKeys);
  return out;
}

const prefix = (table: string, cols: Record<string, string>) =>
  Object.fromEntries(Object.entries(cols).map(([k, v]) => [`${table}.${k}`, v]));

export async function checkSchemaDrift(databaseUrl: string, schemaPath: string): Promise<string[]> {
  const [expected, actual] = await Promise.all([expectedShape(schemaPath), actualShape(databaseUrl)]);
  return diffShapes(expected, actual);
}
