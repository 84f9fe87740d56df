import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chown, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, Pool, type PoolConfig } from 'pg'
import type { Test } from 'tap'
import { migrate, postgresStore, type PostgresStoreOptions } from '../../lib/stores/postgres/index.js'
import type { StoreFactory } from '../../lib/testing/index.js'
import { freePort, waitFor } from './redis-helper.js'

export const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REQUIRED = process.env.REQUIRE_POSTGRES === '1'

/** Options every pool a test opens carries, so a missing server fails fast instead of hanging the run. */
export const TEST_POOL_OPTIONS: PoolConfig = { connectionTimeoutMillis: 10_000, query_timeout: 10_000, max: 10 }

export function testPool (url = POSTGRES_URL, options: PoolConfig = {}): Pool {
  const pool = new Pool({ connectionString: url, ...TEST_POOL_OPTIONS, ...options })
  pool.on('error', () => {})
  return pool
}

/** Every schema handed out in this process, for `leftNoSchemas`. */
const SCHEMAS = new Set<string>()

/** A schema name no other test shares. */
export function uniqueSchema (): string {
  const schema = `sgtest_${randomBytes(6).toString('hex')}`
  SCHEMAS.add(schema)
  return schema
}

async function probe (url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 1000, query_timeout: 1000 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** Skips loudly without PostgreSQL, or fails when `REQUIRE_POSTGRES=1`. */
function unavailable (t: Test, what: string): void {
  const message = `${what} is not available: PostgreSQL tests NOT RUN (set REQUIRE_POSTGRES=1 to make this a failure)`
  if (REQUIRED) {
    t.fail(`${what} is not available and REQUIRE_POSTGRES=1`)
    return
  }
  console.error(`\n${'!'.repeat(80)}\n!! ${message}\n${'!'.repeat(80)}\n`)
  t.pass(message, { skip: message })
}

/** A test that needs the PostgreSQL at `POSTGRES_URL`. */
export function postgresTest (t: Test, name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    if (!await probe(POSTGRES_URL)) return unavailable(t, `PostgreSQL at ${POSTGRES_URL.replace(/:[^:@/]*@/, ':***@')}`)
    await fn(t)
  })
}

/** Drops a test's schema, its tables with it. */
export async function dropSchema (pool: Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
}

/** A migrated schema of this test's own, dropped when the test ends. */
export async function testSchema (t: Test, pool: Pool): Promise<string> {
  const schema = uniqueSchema()
  t.teardown(async () => await dropSchema(pool, schema))
  await migrate(pool, { schema })
  return schema
}

/** A conformance factory: a store on a migrated schema of its own, dropped after the test. */
export function postgresFactory (options: Omit<PostgresStoreOptions, 'schema'>, admin: Pool): StoreFactory {
  return async (t) => {
    const schema = await testSchema(t, admin)
    // A generous timeout: fifty logins of one user queue behind its lock, on a machine that may be busy.
    return postgresStore({ queryTimeoutMs: 10_000, ...options, schema, purge: { intervalMs: 0 } })
  }
}

/**
 * The last test of a file that uses the PostgreSQL at `POSTGRES_URL`: no
 * schema the file took from `uniqueSchema()` is left, since each test drops
 * its own when it ends. What it finds, it reports, then drops.
 */
export function leftNoSchemas (t: Test): void {
  postgresTest(t, 'the tests left no schema in PostgreSQL', async (t) => {
    const admin = testPool()
    t.teardown(async () => await admin.end())
    t.ok(SCHEMAS.size > 0, 'the file used schemas of its own')
    const { rows } = await admin.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)', [[...SCHEMAS]])
    for (const { nspname } of rows) await dropSchema(admin, nspname)
    t.strictSame(rows.map((row) => row.nspname), [], `no schema left of ${SCHEMAS.size}`)
  })
}

/** The directory of `initdb` and `postgres`: on the PATH, else Debian's newest /usr/lib/postgresql/<version>/bin. */
function serverBinaries (): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))) return dir
  }
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
  return versions.map((version) => join(root, version, 'bin')).find((dir) => existsSync(join(dir, 'initdb')))
}

/** A private PostgreSQL server: its own data directory and port, stopped by its pid. */
export interface PrivateServer {
  readonly url: string
  readonly port: number
  child: ChildProcess
  /** Starts it again, on the same data and port. */
  start: () => Promise<void>
  /** Sends `signal` to the server's pid, and with `all`, to the pid of each of its processes (backends, listeners …). */
  signal: (signal: NodeJS.Signals, all?: boolean) => void
}

/** A test that starts its own `postgres` (initdb into a temporary directory). */
export function serverTest (t: Test, name: string, fn: (t: Test, server: PrivateServer) => Promise<void>): void {
  t.test(name, async (t) => {
    const bin = serverBinaries()
    if (bin === undefined) return unavailable(t, 'initdb and postgres')
    await fn(t, await startPrivate(t, bin))
  })
}

/** The pids of the processes whose parent is `parent` (Linux: from /proc). */
function childrenOf (parent: number): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      // The parent pid is the second field after the command, which is in parentheses.
      const stat = readFileSync(join('/proc', name, 'stat'), 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(name))
    } catch {}
  }
  return pids
}

async function startPrivate (t: Test, bin: string): Promise<PrivateServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sg-pg-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  // PostgreSQL refuses to run as root: as root, run it as the postgres user.
  const ids = process.getuid?.() === 0
    ? { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) }
    : {}
  if (ids.uid !== undefined) await chown(dir, ids.uid, ids.gid as number)
  const data = join(dir, 'data')
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], { stdio: 'ignore', ...ids })
  const port = await freePort()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  const server: PrivateServer = {
    url,
    port,
    child: undefined as unknown as ChildProcess,
    start: async () => {
      const child = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-h', '127.0.0.1', '-c', 'fsync=off'], { stdio: 'ignore', ...ids })
      server.child = child
      await waitFor(async () => await probe(url), 10_000, `postgres on port ${port}`)
    },
    signal: (signal, all = false) => {
      const { child } = server
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
      // Each backend is in a process group of its own (PostgreSQL puts it there): found by its parent's pid.
      // A backend may exit between the listing and its signal (ESRCH): it needs none then.
      for (const pid of all ? childrenOf(child.pid) : []) signalIfAlive(pid, signal)
      signalIfAlive(child.pid, signal)
    }
  }
  t.teardown(async () => {
    const { child } = server
    if (child.exitCode !== null || child.signalCode !== null) return
    server.signal('SIGCONT', true)
    server.signal('SIGQUIT')
    await once(child, 'exit')
  })
  await server.start()
  return server
}

/** Sends `signal` to `pid`, unless the process is already gone. */
function signalIfAlive (pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
  }
}
