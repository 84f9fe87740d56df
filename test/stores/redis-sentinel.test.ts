import { Redis } from 'ioredis'
import type { Test } from 'tap'
import t from 'tap'
import { StoreUnavailableError } from '../../lib/errors.js'
import type { SessionRecord } from '../../lib/session.js'
import { FailClosedStore } from '../../lib/stores/fail-closed.js'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/stores/redis/index.js'
import { EPOCH } from '../helper.js'
import {
  afterFailover,
  caughtUp,
  failoverCases,
  freePort,
  numberedSession,
  relay,
  replicationField,
  revokeUnderLoad,
  serverClient,
  startSentinel,
  startServer,
  stop,
  waitFor
} from './redis-helper.js'

/**
 * Failover through Redis Sentinel: a revocation acknowledged is never lost.
 *
 * As `redis-failover.test.ts`, but the failover is Sentinel's, and the store
 * follows it on its own: its client is an ioredis client in Sentinel mode,
 * which asks the Sentinel where the master is.
 *
 * Each trial starts a primary, a replica and one Sentinel (quorum 1, the
 * master down after DOWN_AFTER_MS). The primary is reached through a relay in
 * front of it, which Sentinel monitors and clients connect to: it delays every
 * chunk of the replication stream by LINK_DELAY_MS (a lagging replica) and
 * passes the rest at once. Sessions are created and replicated, then revoked
 * in parallel while others are read and touched; right after the K-th revoke
 * is acknowledged (K random) the primary is killed (SIGKILL) and the relay
 * closed, so what was on the wire is lost. Sentinel promotes the replica; the
 * store, through the same client, answers again from it (its script cache
 * empty: the store's scripts are loaded again), and every revoke acknowledged
 * must hold there, and every session nobody revoked must still be there.
 *
 * Without `durability` revocations are lost (counted, and the test checks it
 * saw some, so it can see a loss at all); with `durability: { replicas: 1 }`
 * none. With it, the new primary has no replica: a revoke fails closed (503)
 * until one attaches, then succeeds again. `SENTINEL_TRIALS=100` runs 100
 * trials of each for the figures in docs/stores.md (2 by default, in `npm test`).
 */

const TRIALS = Number(process.env.SENTINEL_TRIALS ?? 2)
const SESSIONS = 40
const REVOKED = 24
const LINK_DELAY_MS = 100
const MASTER = 'mymaster'
const TIMINGS = { downAfterMs: 500, failoverTimeoutMs: 2000 }
const DURABLE: RedisStoreOptions['durability'] = { replicas: 1, timeoutMs: 400 }
const SYNC_BY_FILE = ['--repl-diskless-sync', 'no']
/** Longest wait for Sentinel to promote the replica and the store to answer from it. */
const FAILOVER_WAIT_MS = 20_000

/** The app's client, in Sentinel mode: it retries long enough to see the failover through, and never hangs a call. */
function sentinelClient (sentinelPort: number): Redis {
  const client = new Redis({
    sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
    name: MASTER,
    retryStrategy: (times) => times > 400 ? null : 50,
    sentinelRetryStrategy: (times) => times > 400 ? null : 50,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    connectTimeout: 1000
  })
  client.on('error', () => {})
  return client
}

/** Which replicas the Sentinel knows of master `MASTER`, by port, with their flags. */
async function replicasSeen (sentinel: Redis): Promise<Map<string, string>> {
  const replicas = await sentinel.call('SENTINEL', 'REPLICAS', MASTER) as string[][]
  const seen = new Map<string, string>()
  for (const fields of replicas) {
    const field = (name: string): string => fields[fields.indexOf(name) + 1] as string
    seen.set(field('port'), field('flags'))
  }
  return seen
}

async function masterPort (sentinel: Redis): Promise<string | undefined> {
  const address = await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER) as [string, string] | null
  return address?.[1]
}

async function answers (store: RedisStore, session: SessionRecord): Promise<boolean> {
  try {
    return await store.get(session.id, EPOCH) !== undefined
  } catch {
    return false
  }
}

/** One trial; returns how many acknowledged revocations the promoted replica lost. */
async function trial (t: Test, durability: RedisStoreOptions['durability']): Promise<{ acknowledged: number, lost: number }> {
  const [primaryPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()]
  // Both may serve a replica's full sync: through a file, at once. Diskless (the default, after a 5 s wait
  // for more replicas) at times left a new replica's stream unsent once it was online, and its WAITs unanswered.
  const primary = await startServer(t, primaryPort, SYNC_BY_FILE)
  const front = await relay(t, primaryPort, LINK_DELAY_MS, { replicationOnly: true })
  await startServer(t, replicaPort, [...SYNC_BY_FILE, '--replicaof', '127.0.0.1', String(front.port)])
  const replica = serverClient(t, replicaPort)
  await waitFor(async () => await replicationField(replica, 'master_link_status') === 'up', 10_000, 'the replica to sync')
  await startSentinel(t, sentinelPort, MASTER, front.port, TIMINGS)
  const sentinel = serverClient(t, sentinelPort)
  await waitFor(async () => (await replicasSeen(sentinel)).get(String(replicaPort)) === 'slave', 10_000, 'the Sentinel to find the replica')

  const client = sentinelClient(sentinelPort)
  const store = redisStore({ client, closeClient: true, ...(durability === undefined ? {} : { durability }) })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  await waitFor(() => client.status === 'ready', 10_000, 'the store\'s client to connect through the Sentinel')
  const sessions = Array.from({ length: SESSIONS }, (_, id) => numberedSession(id))
  for (const session of sessions) await store.create(session, { max: 100, onLimit: 'reject' }, EPOCH)
  await caughtUp(serverClient(t, primaryPort), replica)

  const killAfter = 1 + Math.floor(Math.random() * (REVOKED - 1))
  const acknowledged = await revokeUnderLoad(store, sessions, REVOKED, killAfter, () => {
    stop(primary, 'SIGKILL')
    front.cut()
  })

  await waitFor(async () => await masterPort(sentinel) === String(replicaPort), FAILOVER_WAIT_MS, 'the Sentinel to promote the replica')
  // Whatever the client resent meanwhile: the store meets a primary that knows none of its scripts (NOSCRIPT).
  await replica.script('FLUSH')
  const kept = sessions.slice(REVOKED)
  await waitFor(async () => await answers(store, kept[0] as SessionRecord), FAILOVER_WAIT_MS, 'the store to answer from the new primary')
  t.match(await client.info('server'), new RegExp(`tcp_port:${replicaPort}\\r`), 'the store\'s client follows the Sentinel to the promoted replica')

  const { lost, missing } = await afterFailover(store, acknowledged, kept)
  t.strictSame(missing, [], 'no session nobody revoked is lost')
  if (durability !== undefined) await revokesAfterFailover(t, store, replicaPort, kept)
  return { acknowledged: acknowledged.size, lost: lost.length }
}

/**
 * With `durability`, on the promoted replica that has no replica of its own: a
 * revoke fails closed (the plugin's coded 503) rather than pretend; once a
 * replica attaches, revokes succeed again.
 */
async function revokesAfterFailover (t: Test, store: RedisStore, newPrimaryPort: number, kept: SessionRecord[]): Promise<void> {
  const [first, second] = kept as [SessionRecord, SessionRecord]
  const wrapped = new FailClosedStore(store, { error: () => {} } as never)
  await t.rejects(wrapped.revoke(first.id, EPOCH), StoreUnavailableError, 'a revoke with no replica to acknowledge it fails closed')
  await t.rejects(store.revoke(first.id, EPOCH), /0 of 1 replicas acknowledged the write/, 'saying why')

  const newReplicaPort = await freePort()
  await startServer(t, newReplicaPort, ['--replicaof', '127.0.0.1', String(newPrimaryPort)])
  // Online for WAIT once the primary has its first acknowledgement, after the sync.
  const newPrimary = serverClient(t, newPrimaryPort)
  await waitFor(async () => /state=online/.test(await replicationField(newPrimary, 'slave0') ?? ''), 10_000, 'a new replica to sync')
  t.equal((await store.revoke(second.id, EPOCH))?.id, second.id, 'with a replica again, a revoke succeeds')
  t.equal(await store.get(second.id, EPOCH), undefined, 'and holds')
}

failoverCases(t, { what: 'Sentinel failover', trials: TRIALS, durable: DURABLE, trial })
