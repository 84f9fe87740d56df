import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Pool } from 'pg'
import { checkSchema } from './options.js'

/**
 * The schema's migrations ship with the package as numbered SQL files
 * (`sql/postgres/001_sessions.sql` …), at the same place relative to this
 * file in the sources and in the build.
 */
export const MIGRATIONS_DIR = join(__dirname, '..', '..', '..', 'sql', 'postgres')

export interface Migration {
  /** The number the file name starts with. */
  readonly version: number
  readonly name: string
  readonly sql: string
}

/** The migrations shipped with this version of the package, in order. */
export function migrations (): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((file) => /^\d+_[\w-]+\.sql$/.test(file))
    .map((file) => ({ version: Number.parseInt(file, 10), name: file, sql: readFileSync(join(MIGRATIONS_DIR, file), 'utf8') }))
    .sort((a, b) => a.version - b.version)
}

export interface MigrateOptions {
  /**
   * The schema to create or bring up to date.
   * @default 'session_guard'
   */
  schema?: string
}

/**
 * Creates the store's schema and tables, or brings them up to date: applies,
 * in order and each in one transaction with the rest, the shipped migrations
 * not yet recorded in `<schema>.schema_migrations`. Instances that migrate at
 * once wait for each other (an advisory lock), so each file runs once.
 * Returns the versions it applied (none when the schema was up to date).
 */
export async function migrate (pool: Pool, options: MigrateOptions = {}): Promise<number[]> {
  const schema = checkSchema(options.schema ?? 'session_guard', 'migrate.schema')
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`fastify-session-guard:migrate:${schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
    // The files name no schema: they land in this one.
    await client.query(`SET LOCAL search_path TO "${schema}"`)
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations')
    const done = new Set(rows.map((row) => row.version))
    const applied: number[] = []
    for (const migration of migrations()) {
      if (done.has(migration.version)) continue
      await client.query(migration.sql)
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name])
      applied.push(migration.version)
    }
    await client.query('COMMIT')
    client.release()
    return applied
  } catch (err) {
    client.release(err as Error)
    throw err
  }
}
