import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, type Cluster } from 'ioredis'
import type { Test } from 'tap'
import type { SessionRecord } from '../../lib/session.js'
import { KeyLayout } from '../../lib/stores/redis/keys.js'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/stores/redis/index.js'
import type { StoreFactory } from '../../lib/testing/index.js'
import { EPOCH, MINUTE } from '../helper.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const REQUIRED = process.env.REQUIRE_REDIS === '1'

/** Options every client a test opens carries, so a missing server fails fast instead of hanging the run. */
export const TEST_CLIENT_OPTIONS = {
  retryStrategy: (times: number) => times > 20 ? null : 100,
  maxRetriesPerRequest: 1,
  commandTimeout: 2000,
  connectTimeout: 2000
}

export function testClient (url = REDIS_URL): Redis {
  const client = new Redis(url, TEST_CLIENT_OPTIONS)
  client.on('error', () => {})
  return client
}

/** Every prefix handed out in this process, for `leftNoKeys`. */
const PREFIXES = new Set<string>()

/** A key prefix no other test shares. */
/**
 * A user's stats keys by name (`removed` is the user's markers), in the shard
 * the default layout gives the user, without the prefix when it is ''.
 */
export function statsKeys (prefix: string, userId: string): Record<'sessions' | 'users' | 'removed' | 'sizes' | 'sized' | 'hist', string> {
  const [sessions, users, removed, sizes, sized, hist] = new KeyLayout(prefix, 32).stats(userId) as [string, string, string, string, string, string]
  return { sessions, users, removed, sizes, sized, hist }
}

export function uniquePrefix (): string {
  const prefix = `sgtest:${randomBytes(6).toString('hex')}:`
  PREFIXES.add(prefix)
  return prefix
}

async function probe (url: string): Promise<boolean> {
  const client = new Redis(url, { retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, lazyConnect: true })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.ping() === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

/** Skips loudly without Redis, or fails when `REQUIRE_REDIS=1`. */
function unavailable (t: Test, what: string): void {
  const message = `${what} is not available: Redis tests NOT RUN (set REQUIRE_REDIS=1 to make this a failure)`
  if (REQUIRED) {
    t.fail(`${what} is not available and REQUIRE_REDIS=1`)
    return
  }
  console.error(`\n${'!'.repeat(80)}\n!! ${message}\n${'!'.repeat(80)}\n`)
  t.pass(message, { skip: message })
}

/** A test that needs the Redis at `REDIS_URL`. */
export function redisTest (t: Test, name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    if (!await probe(REDIS_URL)) return unavailable(t, `Redis at ${REDIS_URL}`)
    await fn(t)
  })
}

/** A test that starts its own `redis-server` processes. */
export function serverTest (t: Test, name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    const found = await new Promise<boolean>((resolve) => {
      const child = spawn('redis-server', ['--version'], { stdio: 'ignore' })
      child.on('error', () => resolve(false))
      child.on('exit', (code) => resolve(code === 0))
    })
    if (!found) return unavailable(t, 'redis-server')
    await fn(t)
  })
}

/** A prefix of the Redis at `REDIS_URL` of this test's own: its keys are deleted when the test ends. */
export function testPrefix (t: Test): string {
  const prefix = uniquePrefix()
  t.teardown(async () => {
    const admin = testClient()
    await deleteKeys(admin, prefix)
    admin.disconnect()
  })
  return prefix
}

/** Deletes every key holding `prefix` (on each master of a Cluster). */
export async function deleteKeys (client: Redis | Cluster, prefix: string): Promise<void> {
  const nodes = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis]
  for (const node of nodes) {
    let cursor = '0'
    do {
      // `*` first: a client's own keyPrefix may come before ours.
      const [next, keys] = await node.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
      cursor = next
      for (const key of keys) await node.del(key)
    } while (cursor !== '0')
  }
}

/** Every key holding `prefix`, on one Redis. */
async function keysOf (client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `*${prefix}*`, 'COUNT', 1000)
    cursor = next
    found.push(...keys)
  } while (cursor !== '0')
  return found
}

/**
 * The last test of a file that writes to the Redis at `REDIS_URL`: every
 * prefix the file took from `uniquePrefix()` holds no key, since each test
 * deletes its own when it ends. What it finds, it reports, then deletes.
 */
export function leftNoKeys (t: Test): void {
  redisTest(t, 'the tests left no key in Redis', async (t) => {
    const admin = testClient()
    t.teardown(() => admin.disconnect())
    t.ok(PREFIXES.size > 0, 'the file used prefixes of its own')
    const left: string[] = []
    for (const prefix of PREFIXES) {
      left.push(...await keysOf(admin, prefix))
      await deleteKeys(admin, prefix)
    }
    t.strictSame(left, [], `no key under any of ${PREFIXES.size} prefixes`)
  })
}

/** A conformance factory: a store on its own prefix, its keys deleted after the test. */
export function redisFactory (options: Omit<RedisStoreOptions, 'prefix'>, admin: () => Redis | Cluster): StoreFactory {
  return (t) => {
    const prefix = uniquePrefix()
    const store = redisStore({ ...options, prefix })
    t.teardown(async () => await deleteKeys(admin(), prefix))
    return store
  }
}

export function storeFor (t: Test, options: RedisStoreOptions): RedisStore {
  const store = redisStore({ prefix: uniquePrefix(), ...options })
  t.teardown(() => store.close())
  return store
}

/** A TCP port nothing listens on, with its Cluster bus port (+10000) free too. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000)
    if (await isFree(port) && await isFree(port + 10000)) return port
  }
}

async function isFree (port: number): Promise<boolean> {
  const server = createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    return true
  } catch {
    return false
  } finally {
    server.close()
  }
}

/**
 * Starts `redis-server` on 127.0.0.1:`port`, working in `dir` (a temporary
 * directory by default: a primary writes its RDB there for a replica's sync);
 * killed by its pid when the test ends.
 */
export async function startServer (t: Test, port: number, args: string[] = [], dir?: string): Promise<ChildProcess> {
  return await spawnRedis(t, port, () => ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', ...args], dir)
}

/** Timings of a Sentinel: short, so a test sees a failover within a second or two. */
export interface SentinelTimings {
  /** `down-after-milliseconds`: how long the master must not answer before it is deemed down. */
  downAfterMs: number
  /** `failover-timeout`. */
  failoverTimeoutMs: number
}

/**
 * Starts a Sentinel (`redis-server <conf> --sentinel`) on 127.0.0.1:`port`,
 * alone (quorum 1), monitoring the master `name` at 127.0.0.1:`masterPort`;
 * its config file (which Sentinel rewrites) in a temporary directory; killed by
 * its pid when the test ends.
 */
export async function startSentinel (t: Test, port: number, name: string, masterPort: number, timings: SentinelTimings): Promise<ChildProcess> {
  return await spawnRedis(t, port, (dir) => {
    const conf = join(dir, 'sentinel.conf')
    writeFileSync(conf, [
      `port ${port}`,
      'bind 127.0.0.1',
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${name} ${timings.downAfterMs}`,
      `sentinel failover-timeout ${name} ${timings.failoverTimeoutMs}`,
      ''
    ].join('\n'))
    return [conf, '--sentinel']
  })
}

/** `redis-server` with the arguments `argsIn(its directory)`, in `dir` or a temporary directory removed after it is killed. */
async function spawnRedis (t: Test, port: number, argsIn: (dir: string) => string[], dir?: string): Promise<ChildProcess> {
  const cwd = dir ?? mkdtempSync(join(tmpdir(), 'session-guard-redis-'))
  const child = spawn('redis-server', argsIn(cwd), { stdio: 'ignore', cwd })
  t.teardown(() => {
    stop(child, 'SIGKILL')
    if (dir === undefined) rmSync(cwd, { recursive: true, force: true })
  })
  await waitFor(async () => await probe(`redis://127.0.0.1:${port}`), 5000, `redis-server on port ${port}`)
  return child
}

export function stop (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal)
}

/** Polls `check` until it holds; real time, bounded. */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now()
  for (;;) {
    if (await check()) return performance.now() - started
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A client of one server started by the test, disconnected when the test ends. */
export function serverClient (t: Test, port: number): Redis {
  const redis = new Redis({ ...TEST_CLIENT_OPTIONS, port, host: '127.0.0.1' })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  return redis
}

/** A field of `INFO replication`, such as `master_repl_offset`. */
export async function replicationField (redis: Redis, field: string): Promise<string | undefined> {
  return new RegExp(`${field}:([^\\r\\n]*)`).exec(await redis.info('replication'))?.[1]
}

/** Waits until `replica` has everything `primary` wrote so far. */
export async function caughtUp (primary: Redis, replica: Redis): Promise<void> {
  await waitFor(async () => await replicationField(replica, 'slave_repl_offset') === await replicationField(primary, 'master_repl_offset'), 10_000, 'the replica to catch up')
}

export interface Relay {
  port: number
  /** Cuts the link: closes every socket and the listener, and drops every chunk not yet delivered. */
  cut: () => void
  /** Sets the delay of the chunks relayed from now on; only ever raise it, or a chunk could overtake one delayed before it. */
  delay: (ms: number) => void
}

/**
 * A TCP relay to 127.0.0.1:`target` that delays every chunk from it by
 * `delayMs`, in order: a replica that replicates through it lags, and its
 * acknowledgements come back at once. With `replicationOnly`, only the
 * connections that speak the replication protocol (`REPLCONF`, `PSYNC`) are
 * delayed: the relay can stand in front of a primary, for its clients and a
 * Sentinel as well, while its replica lags.
 */
export async function relay (t: Test, target: number, delayMs: number, { replicationOnly = false } = {}): Promise<Relay> {
  let current = delayMs
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const forward = (chunk: Buffer, to: Socket, delayMs: number): void => {
    if (delayMs === 0) {
      if (!to.destroyed) to.write(chunk)
      return
    }
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (!to.destroyed) to.write(chunk)
    }, delayMs)
    timers.add(timer)
  }
  const server: Server = createServer((downstream) => {
    const upstream = connect(target, '127.0.0.1')
    for (const socket of [downstream, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => { for (const other of [downstream, upstream]) other.destroy() })
    }
    let lagging = !replicationOnly
    downstream.on('data', (chunk: Buffer) => {
      if (!lagging && /REPLCONF|PSYNC/i.test(chunk.toString('latin1'))) lagging = true
      forward(chunk, upstream, 0)
    })
    // A chunk sent undelayed never overtakes one delayed before it: once lagging, always lagging.
    upstream.on('data', (chunk: Buffer) => forward(chunk, downstream, lagging ? current : 0))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const cut = (): void => {
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    for (const socket of sockets) socket.destroy()
    server.close()
  }
  t.teardown(cut)
  return { port: (server.address() as { port: number }).port, cut, delay: (ms) => { current = ms } }
}

/** Session `s<n>` of one of eight users, live for half an hour from `EPOCH`. */
export function numberedSession (n: number): SessionRecord {
  return {
    id: `s${n}`,
    userId: `user${n % 8}`,
    fingerprintHash: 'fp',
    createdAt: EPOCH,
    lastSeenAt: EPOCH + n,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 60 * MINUTE,
    remembered: false
  }
}

/**
 * Revokes `revoked` at once while the other `sessions` are read and touched,
 * and calls `kill()` right after the `killAfter`-th revoke is acknowledged
 * (or once every revoke has answered, if fewer were). Returns the ids of every revoke acknowledged (before the kill or after it).
 */
export async function revokeUnderLoad (store: RedisStore, sessions: SessionRecord[], revoked: number, killAfter: number, kill: () => void): Promise<Set<string>> {
  const acknowledged = new Set<string>()
  const state = { killed: false }
  const others = sessions.slice(revoked)
  const load = (async () => {
    for (let round = 0; !state.killed; round++) {
      const session = others[round % others.length] as SessionRecord
      await Promise.allSettled([store.get(session.id, EPOCH), store.touch(session.id, { lastSeenAt: EPOCH + round, idleExpiresAt: EPOCH + 30 * MINUTE }, EPOCH)])
    }
  })()
  await Promise.allSettled(sessions.slice(0, revoked).map(async (session) => {
    if (await store.revoke(session.id, EPOCH) === undefined) return
    acknowledged.add(session.id)
    if (acknowledged.size === killAfter && !state.killed) {
      state.killed = true
      kill()
    }
  }))
  // Fewer acknowledged than `killAfter` (the others failed): the primary dies all the same.
  if (!state.killed) kill()
  state.killed = true
  await load
  return acknowledged
}

/**
 * What `store` (reading the promoted replica) says after a failover: the
 * acknowledged revokes it lost (their sessions are live again) and the
 * sessions nobody revoked that it does not have.
 */
export async function afterFailover (store: RedisStore, acknowledged: Set<string>, kept: SessionRecord[]): Promise<{ lost: string[], missing: string[] }> {
  const lost: string[] = []
  for (const id of acknowledged) if (await store.get(id, EPOCH) !== undefined) lost.push(id)
  const missing: string[] = []
  for (const session of kept) if (await store.get(session.id, EPOCH) === undefined) missing.push(session.id)
  return { lost, missing }
}

type Durability = RedisStoreOptions['durability']

/**
 * The two cases of a failover test, each `trials` trials of `trial`: without
 * durability acknowledged revocations are lost (the case checks it saw some,
 * so the test can see a loss at all), with `durable` none.
 */
export function failoverCases (t: Test, { what, trials, durable, trial }: {
  /** What fails over, in the tests' names: `'failover'`, `'Sentinel failover'`. */
  what: string
  trials: number
  durable: Durability
  trial: (t: Test, durability: Durability) => Promise<{ acknowledged: number, lost: number }>
}): void {
  async function run (t: Test, durability: Durability): Promise<{ acknowledged: number, lost: number }> {
    const total = { acknowledged: 0, lost: 0 }
    for (let n = 0; n < trials; n++) {
      await t.test(`trial ${n + 1}`, async (t) => {
        const { acknowledged, lost } = await trial(t, durability)
        total.acknowledged += acknowledged
        total.lost += lost
      })
    }
    t.comment(`${durability === undefined ? 'without' : 'with'} durability: ${total.lost} of ${total.acknowledged} acknowledged revocations lost over ${trials} ${what}s`)
    return total
  }
  serverTest(t, `without durability, a ${what} loses acknowledged revocations`, async (t) => {
    const { lost } = await run(t, undefined)
    t.ok(lost > 0, 'some were lost: the test sees a loss when there is one')
  })
  serverTest(t, `with durability: { replicas: 1 }, a ${what} loses no acknowledged revocation`, async (t) => {
    const { lost, acknowledged } = await run(t, durable)
    t.ok(acknowledged > 0, 'revocations were acknowledged before the kills')
    t.equal(lost, 0, 'none lost')
  })
}
