import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import t from 'tap'
import type { SessionRecord } from '../../lib/session.js'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/stores/redis/index.js'
import { EPOCH, MINUTE } from '../helper.js'
import { freePort, serverTest, startServer, stop, TEST_CLIENT_OPTIONS, waitFor } from './redis-helper.js'

/**
 * Failover: a revocation acknowledged is never lost.
 *
 * Each trial starts its own primary and a replica. The replica replicates
 * through a small TCP relay that delays every chunk from the primary by
 * LINK_DELAY_MS: a replica that lags (its acknowledgements come back at once).
 * The delay is long beside the test's own event-loop stalls on a busy machine,
 * so a loss, when the store allows one, is seen. Sessions are created and
 * replicated, then revoked in parallel while other sessions are read and touched;
 * right after the K-th revoke is acknowledged (K random), the primary is killed
 * (SIGKILL) and the link cut (what was on the wire is lost), the replica is
 * promoted (`REPLICAOF NO ONE`) and a new store reads from it. Every revoke
 * acknowledged before the kill must hold there, and every session nobody
 * revoked must still be there.
 *
 * Without `durability` revocations are lost (counted, and the test checks it
 * saw some, so it can see a loss at all); with `durability: { replicas: 1 }`
 * none. `FAILOVER_TRIALS=200` runs 200 trials of each for the figures in
 * docs/stores.md (3 by default, in `npm test`).
 */

const TRIALS = Number(process.env.FAILOVER_TRIALS ?? 3)
const SESSIONS = 40
const REVOKED = 24
const LINK_DELAY_MS = 100
const DURABLE: RedisStoreOptions['durability'] = { replicas: 1, timeoutMs: 400 }

interface Relay {
  port: number
  /** Cuts the link: closes every socket and drops every chunk not yet delivered. */
  cut: () => void
}

/** A TCP relay to `target` that delays every chunk from it by `delayMs`, in order. */
async function relay (t: Test, target: number, delayMs: number): Promise<Relay> {
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const pipe = (from: Socket, to: Socket, delayMs: number): void => {
    from.on('data', (chunk) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (!to.destroyed) to.write(chunk)
      }, delayMs)
      timers.add(timer)
    })
  }
  const server: Server = createServer((downstream) => {
    const upstream = connect(target, '127.0.0.1')
    for (const socket of [downstream, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => { for (const other of [downstream, upstream]) other.destroy() })
    }
    pipe(downstream, upstream, 0)
    pipe(upstream, downstream, delayMs)
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
  return { port: (server.address() as { port: number }).port, cut }
}

function client (t: Test, port: number): Redis {
  const redis = new Redis({ ...TEST_CLIENT_OPTIONS, port, host: '127.0.0.1' })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  return redis
}

function record (id: number): SessionRecord {
  return {
    id: `s${id}`,
    userId: `user${id % 8}`,
    fingerprintHash: 'fp',
    createdAt: EPOCH,
    lastSeenAt: EPOCH + id,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 60 * MINUTE,
    remembered: false
  }
}

function openStore (t: Test, port: number, durability: RedisStoreOptions['durability']): RedisStore {
  const store = redisStore({ connection: { host: '127.0.0.1', port }, commandTimeoutMs: 1000, ...(durability === undefined ? {} : { durability }) })
  t.teardown(() => store.close())
  return store
}

/** One trial; returns how many acknowledged revocations the promoted replica lost. */
async function trial (t: Test, durability: RedisStoreOptions['durability']): Promise<{ acknowledged: number, lost: number }> {
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const primary = await startServer(t, primaryPort)
  const link = await relay(t, primaryPort, LINK_DELAY_MS)
  await startServer(t, replicaPort, ['--replicaof', '127.0.0.1', String(link.port)])
  const replica = client(t, replicaPort)
  await waitFor(async () => /master_link_status:up/.test(await replica.info('replication')), 10_000, 'the replica to sync')

  const store = openStore(t, primaryPort, durability)
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const sessions = Array.from({ length: SESSIONS }, (_, id) => record(id))
  for (const session of sessions) await store.create(session, { max: 100, onLimit: 'reject' }, EPOCH)
  const offset = async (redis: Redis, field: string): Promise<string | undefined> => new RegExp(`${field}:(\\d+)`).exec(await redis.info('replication'))?.[1]
  const primaryClient = client(t, primaryPort)
  await waitFor(async () => await offset(replica, 'slave_repl_offset') === await offset(primaryClient, 'master_repl_offset'), 10_000, 'every session on the replica')

  // Revoke REVOKED sessions at once, under reads and touches of the others; kill after the K-th acknowledgement.
  const kill = 1 + Math.floor(Math.random() * (REVOKED - 1))
  const acknowledged = new Set<string>()
  const state = { killed: false }
  const load = (async () => {
    for (let round = 0; !state.killed; round++) {
      const session = sessions[REVOKED + (round % (SESSIONS - REVOKED))] as SessionRecord
      await Promise.allSettled([store.get(session.id, EPOCH), store.touch(session.id, { lastSeenAt: EPOCH + round, idleExpiresAt: EPOCH + 30 * MINUTE }, EPOCH)])
    }
  })()
  await Promise.allSettled(sessions.slice(0, REVOKED).map(async (session) => {
    const revoked = await store.revoke(session.id, EPOCH)
    if (revoked === undefined) return
    acknowledged.add(session.id)
    if (acknowledged.size === kill && !state.killed) {
      state.killed = true
      stop(primary, 'SIGKILL')
      link.cut()
    }
  }))
  state.killed = true
  await load
  await store.close()

  await replica.replicaof('NO', 'ONE')
  const promoted = openStore(t, replicaPort, undefined)
  await promoted.open({ now: () => EPOCH, onRemoved: () => {} })
  let lost = 0
  for (const id of acknowledged) if (await promoted.get(id, EPOCH) !== undefined) lost++
  const kept = sessions.slice(REVOKED)
  const missing = []
  for (const session of kept) if (await promoted.get(session.id, EPOCH) === undefined) missing.push(session.id)
  t.strictSame(missing, [], 'no session nobody revoked is lost')
  return { acknowledged: acknowledged.size, lost }
}

async function trials (t: Test, durability: RedisStoreOptions['durability']): Promise<{ acknowledged: number, lost: number, trials: number }> {
  const total = { acknowledged: 0, lost: 0, trials: TRIALS }
  for (let n = 0; n < TRIALS; n++) {
    await t.test(`trial ${n + 1}`, async (t) => {
      const { acknowledged, lost } = await trial(t, durability)
      total.acknowledged += acknowledged
      total.lost += lost
    })
  }
  t.comment(`${durability === undefined ? 'without' : 'with'} durability: ${total.lost} of ${total.acknowledged} acknowledged revocations lost over ${TRIALS} failovers`)
  return total
}

serverTest(t, 'without durability, a failover loses acknowledged revocations', async (t) => {
  const { lost } = await trials(t, undefined)
  t.ok(lost > 0, 'some were lost: the test sees a loss when there is one')
})

serverTest(t, 'with durability: { replicas: 1 }, a failover loses no acknowledged revocation', async (t) => {
  const { lost, acknowledged } = await trials(t, DURABLE)
  t.ok(acknowledged > 0, 'revocations were acknowledged before the kills')
  t.equal(lost, 0, 'none lost')
})
