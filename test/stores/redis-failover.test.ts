import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import type { Test } from 'tap'
import t from 'tap'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/stores/redis/index.js'
import { EPOCH } from '../helper.js'
import { afterFailover, caughtUp, failoverCases, freePort, numberedSession, relay, replicationField, revokeUnderLoad, serverClient, serverTest, startServer, stop, waitFor } from './redis-helper.js'

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
 *
 * The last test moves the clients' address to the promoted replica while a
 * revoke's WAIT waits, as Sentinel does: the client resends the WAIT there,
 * where it counts none of the revoke, and the store must not take its answer.
 */

const TRIALS = Number(process.env.FAILOVER_TRIALS ?? 3)
const SESSIONS = 40
const REVOKED = 24
const LINK_DELAY_MS = 100
const DURABLE: RedisStoreOptions['durability'] = { replicas: 1, timeoutMs: 400 }

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
  const replica = serverClient(t, replicaPort)
  await waitFor(async () => await replicationField(replica, 'master_link_status') === 'up', 10_000, 'the replica to sync')

  const store = openStore(t, primaryPort, durability)
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const sessions = Array.from({ length: SESSIONS }, (_, id) => numberedSession(id))
  for (const session of sessions) await store.create(session, { max: 100, onLimit: 'reject' }, EPOCH)
  await caughtUp(serverClient(t, primaryPort), replica)

  // Revoke REVOKED sessions at once, under reads and touches of the others; kill after the K-th acknowledgement.
  const killAfter = 1 + Math.floor(Math.random() * (REVOKED - 1))
  const acknowledged = await revokeUnderLoad(store, sessions, REVOKED, killAfter, () => {
    stop(primary, 'SIGKILL')
    link.cut()
  })
  await store.close()

  await replica.replicaof('NO', 'ONE')
  const promoted = openStore(t, replicaPort, undefined)
  await promoted.open({ now: () => EPOCH, onRemoved: () => {} })
  const { lost, missing } = await afterFailover(promoted, acknowledged, sessions.slice(REVOKED))
  t.strictSame(missing, [], 'no session nobody revoked is lost')
  return { acknowledged: acknowledged.size, lost: lost.length }
}

failoverCases(t, { what: 'failover', trials: TRIALS, durable: DURABLE, trial })

/**
 * The address clients use, in front of whichever server is the primary (what
 * Sentinel, a DNS name or a virtual IP give them): `drop()` closes every
 * connection and holds new ones until `switchTo(port)` sends them there.
 */
async function front (t: Test, target: number): Promise<{ port: number, drop: () => void, switchTo: (port: number) => void }> {
  const state: { target: number | undefined, sockets: Set<Socket>, waiting: Socket[] } = { target, sockets: new Set(), waiting: [] }
  const attach = (downstream: Socket, port: number): void => {
    const upstream = connect(port, '127.0.0.1')
    for (const socket of [downstream, upstream]) {
      state.sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => { for (const other of [downstream, upstream]) other.destroy() })
    }
    downstream.pipe(upstream)
    upstream.pipe(downstream)
  }
  const server = createServer((downstream) => {
    if (state.target === undefined) state.waiting.push(downstream)
    else attach(downstream, state.target)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of [...state.sockets, ...state.waiting]) socket.destroy()
    server.close()
  })
  return {
    port: (server.address() as { port: number }).port,
    drop: () => {
      state.target = undefined
      for (const socket of state.sockets) socket.destroy()
    },
    switchTo: (port) => {
      state.target = port
      for (const downstream of state.waiting.splice(0)) attach(downstream, port)
    }
  }
}

serverTest(t, 'with durability, a WAIT the client resends to the new primary does not acknowledge a revoke the old one took', async (t) => {
  // The replica lags more than the WAIT waits: while it waits, the revoke is on the primary only.
  const slowLinkMs = 1500
  const [primaryPort, replicaPort, secondPort] = [await freePort(), await freePort(), await freePort()]
  const byFile = ['--repl-diskless-sync', 'no']
  const primary = await startServer(t, primaryPort, byFile)
  // The link is fast while the replicas make their first sync (a handshake of several round trips), then slow.
  const link = await relay(t, primaryPort, 0)
  await startServer(t, replicaPort, [...byFile, '--replicaof', '127.0.0.1', String(link.port)])
  // A replica of the replica: once promoted, the new primary has a replica to acknowledge a WAIT at once.
  await startServer(t, secondPort, ['--replicaof', '127.0.0.1', String(replicaPort)])
  const [admin, replica] = [serverClient(t, primaryPort), serverClient(t, replicaPort)]
  const online = async (): Promise<boolean> => /state=online/.test(await replicationField(replica, 'slave0') ?? '')
  await waitFor(async () => await replicationField(replica, 'master_link_status') === 'up' && await online(), 10_000, 'the replicas to sync')
  link.delay(slowLinkMs)
  const address = await front(t, primaryPort)
  const store = redisStore({ connection: { host: '127.0.0.1', port: address.port }, commandTimeoutMs: 3000, durability: { replicas: 1, timeoutMs: 2000 } })
  t.teardown(() => store.close())
  await store.open({ now: () => EPOCH, onRemoved: () => {} })
  const session = numberedSession(1)
  await store.create(session, { max: 10, onLimit: 'reject' }, EPOCH)
  await caughtUp(admin, replica)

  const revoking = store.revoke(session.id, EPOCH).then(() => 'acknowledged', (err: Error) => err.message)
  await waitFor(async () => /blocked_clients:1\r/.test(await admin.info('clients')), 2000, 'the revoke\'s WAIT to block')
  // The failover: the primary dies with the revoke, the replica is promoted, the address moves to it.
  address.drop()
  stop(primary, 'SIGKILL')
  link.cut()
  await replica.replicaof('NO', 'ONE')
  await waitFor(online, 10_000, 'the new primary\'s replica to be online')
  address.switchTo(replicaPort)
  t.match(await revoking, /connection to Redis was lost between the write and its WAIT/, 'the revoke is not acknowledged')
  t.ok(await store.get(session.id, EPOCH), 'rightly: the failover undid it')
})
