/**
 * `fastify-session-guard/postgres`: the PostgreSQL store.
 *
 *   import { postgresStore, migrate } from 'fastify-session-guard/postgres'
 *
 *   await migrate(pool)
 *   await app.register(sessionGuard, { secret, store: postgresStore({ pool }) })
 *
 * It runs on `pg` (node-postgres), an optional peer dependency of the package
 * that the app installs: the main entry never loads this one, so an app on
 * another store loads no PostgreSQL client. The files beside this one are its parts.
 */
export { PostgresStore, postgresStore } from './postgres-store.js'
export { migrate, migrations, type MigrateOptions, type Migration } from './migrate.js'
export type { PostgresLocalCacheOptions, PostgresStoreOptions, PurgeOptions } from './options.js'
