import t from 'tap'
import {
  memoryStore,
  migrateSessions,
  type MigrationProgress,
  type SessionRecord,
  type SessionStore
} from '../lib/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { build, type Credentials, type Harness, MINUTE } from './helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

const REFRESH_COOKIE = '__Secure-sg-rt'

async function refresh (h: Harness, credentials: Credentials): Promise<Credentials | undefined> {
  const response = await h.app.inject({
    method: 'POST',
    url: '/refresh',
    headers: { cookie: `${REFRESH_COOKIE}=${credentials.refreshToken}; ${credentials.fingerprint}`, 'x-requested-with': 'fetch' }
  })
  if (response.statusCode !== 200) return undefined
  const cookie = (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === REFRESH_COOKIE)
  return { ...credentials, accessToken: response.json().accessToken, refreshToken: cookie?.value ?? '' }
}

async function everySession (store: SessionStore, now: number): Promise<Map<string, SessionRecord>> {
  const all = new Map<string, SessionRecord>()
  for await (const batch of store.scan(200, now)) for (const session of batch) all.set(session.id, session)
  return all
}

redisTest(t, 'memory to Redis while guarded requests keep arriving, then Redis to memory: nobody signed out', async (t) => {
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const from = memoryStore()
  const to = redisStore({ connection: REDIS_URL, prefix, commandTimeoutMs: 10_000 })
  const a = await build(t, { store: from, maxSessionsPerUser: 4 })
  // The app that takes over, on the Redis store (its plugin opens the store); it serves nothing until the switch.
  const b = await build(t, { store: to, maxSessionsPerUser: 4 })

  // A populated store: 200 users with 3 sessions each, a quarter of them refreshed once, and some counters.
  const live = new Map<string, Credentials>()
  for (let user = 0; user < 200; user++) {
    for (let j = 0; j < 3; j++) {
      const credentials = await a.login(`user-${user}`, { remember: j === 0 })
      live.set(credentials.sessionId, credentials)
    }
  }
  for (const [id, credentials] of [...live].filter((_, k) => k % 4 === 0)) live.set(id, await refresh(a, credentials) as Credentials)
  for (let j = 0; j < 20; j++) await from.increment(`failed:${j % 5}`, 15 * MINUTE, a.clock.now)
  a.clock.advance(MINUTE)

  // Requests keep arriving during the first pass: guarded reads (which record activity), refreshes, logins, logouts.
  const traffic = { guarded: 0, refused: 0, refreshed: 0, logins: 0, logouts: 0 }
  const loggedOut: Credentials[] = []
  const state = { running: true }
  const start = a.clock.now
  const load = (async () => {
    for (let k = 0; state.running; k++) {
      const ids = [...live.keys()]
      const id = ids[(k * 7919) % ids.length] as string
      const credentials = live.get(id) as Credentials
      if (k % 25 === 0) {
        const fresh = await a.login(`user-${k % 200}`)
        live.set(fresh.sessionId, fresh)
        // at the limit (4), the login may have evicted the user's least recently active session
        for (const [held, c] of live) if (c.response !== fresh.response && (await from.get(held, a.clock.now)) === undefined) live.delete(held)
        traffic.logins++
      } else if (k % 40 === 0) {
        const next = await refresh(a, credentials)
        if (next === undefined) traffic.refused++
        else {
          live.set(id, next)
          traffic.refreshed++
        }
      } else if (k % 60 === 0) {
        const response = await a.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint } })
        if (response.statusCode === 204) {
          live.delete(id)
          loggedOut.push(credentials)
          traffic.logouts++
        } else traffic.refused++
      } else {
        const response = await a.me(credentials)
        if (response.statusCode === 200) traffic.guarded++
        else traffic.refused++
      }
      // Time passes with the requests, but at most 8 minutes of it, well inside the access tokens' 15: how many
      // requests arrive during the pass depends on the machine (and on how the Redis client batches its writes).
      if (k % 10 === 0 && a.clock.now - start < 8 * MINUTE) a.clock.advance(2000)
    }
  })()

  let batches = 0
  let first: MigrationProgress
  try {
    first = await migrateSessions({ from, to, batchSize: 25, clock: a.clock.read, onProgress: () => { batches++ } })
  } finally {
    // Whatever happens, no request after the apps close.
    state.running = false
    await load
  }
  const duringPass = { ...traffic }
  // What the first pass left behind, the requests during it (and the last one after it) done.
  const inFrom = await everySession(from, a.clock.now)
  const inTo = await everySession(to, a.clock.now)
  const missing = [...inFrom.keys()].filter((id) => !inTo.has(id)).length
  const behind = [...inFrom.values()].filter((session) => {
    const copy = inTo.get(session.id)
    return copy !== undefined && (copy.refresh?.rotations !== session.refresh?.rotations || copy.lastSeenAt !== session.lastSeenAt)
  }).length
  const revokedStillCopied = [...inTo.keys()].filter((id) => !inFrom.has(id)).length

  t.equal(traffic.refused, 0, 'no request was refused on the old store during the migration')
  t.ok(duringPass.guarded > 0 && duringPass.logins > 0 && duringPass.refreshed > 0, 'requests kept arriving during the pass')
  t.ok(first.sessions.imported > 0 && batches > 1, `the first pass moved ${first.sessions.imported} sessions in ${batches} batches`)
  t.ok(first.counters.imported >= 5, 'and the counters (ours, and the plugin\'s own: known devices, login bursts)')

  // The final pass, once the old app stops writing (an onClose hook, say): catches up and prunes.
  const reported: MigrationProgress[] = []
  const final = await migrateSessions({ from, to, batchSize: 100, clock: a.clock.read, prune: true, onProgress: (progress) => reported.push(progress) })
  t.strictSame(reported.at(-1), final, 'the last progress report is the result')
  const finalFrom = await everySession(from, a.clock.now)
  const finalTo = await everySession(to, a.clock.now)
  t.strictSame([...finalTo.keys()].sort(), [...finalFrom.keys()].sort(), 'after the final pass Redis holds exactly the live sessions')
  for (const [id, session] of finalFrom) t.strictSame(finalTo.get(id), session, `${id} as the memory store holds it`)
  t.equal(final.sessions.pruned, revokedStillCopied, 'the pruned ones are those that ended (logout, limit eviction) after the first pass copied them')
  t.strictSame([...finalFrom.keys()].sort(), [...live.keys()].sort(), 'and they are the sessions the clients hold')

  // The switch: the new app, on Redis, with the clients' credentials.
  b.clock.now = a.clock.now
  let served = 0
  for (const credentials of live.values()) if ((await b.me(credentials)).statusCode === 200) served++
  t.equal(served, live.size, 'every live session is served by the app on Redis: nobody signed out')
  let refreshed = 0
  for (const credentials of [...live.values()].slice(0, 50)) if (await refresh(b, credentials) !== undefined) refreshed++
  t.equal(refreshed, 50, 'refresh tokens rotate on Redis (no false reuse alarm)')
  let refusedAfterLogout = 0
  for (const credentials of loggedOut) if ((await b.me(credentials)).statusCode === 401) refusedAfterLogout++
  t.equal(refusedAfterLogout, loggedOut.length, 'a logout during the migration stays a logout')
  t.match(await to.counter('failed:0', b.clock.now), { count: 4 }, 'counters moved with their counts')

  // And back: Redis to a fresh memory store.
  const back = memoryStore()
  await back.open({ now: b.clock.read, onRemoved: () => {} })
  t.teardown(() => back.close())
  const returned = await migrateSessions({ from: to, to: back, clock: b.clock.read })
  const onRedis = await everySession(to, b.clock.now)
  const inMemory = await everySession(back, b.clock.now)
  t.strictSame([...inMemory.keys()].sort(), [...onRedis.keys()].sort(), 'Redis to memory: the same sessions')
  for (const [id, session] of onRedis) t.strictSame(inMemory.get(id), session, `${id} as Redis holds it`)
  t.strictSame((await back.stats()).sessionsPerUser, (await to.stats(b.clock.now)).sessionsPerUser, 'the per-user index alike')

  const figure = (p: MigrationProgress): string => `read ${p.sessions.read}, imported ${p.sessions.imported}, skipped ${p.sessions.skipped}, pruned ${p.sessions.pruned}; counters ${p.counters.imported}`
  t.comment(`first pass (under load: ${duringPass.guarded} guarded requests, ${duringPass.refreshed} refreshes, ${duringPass.logins} logins, ${duringPass.logouts} logouts): ${figure(first)}`)
  t.comment(`left behind by the first pass while serving: ${missing} of ${inFrom.size} live sessions not yet copied, ${behind} copied in an older state, ${revokedStillCopied} copied then ended (logout or limit eviction)`)
  t.comment(`final pass: ${figure(final)}; live on memory ${finalFrom.size}, on Redis ${finalTo.size}; served after the switch ${served}/${live.size}`)
  t.comment(`Redis back to memory: ${figure(returned)}; ${inMemory.size} live in memory`)
})

t.test('migrateSessions checks its options and the stores before moving anything', async (t) => {
  const from = memoryStore()
  const to = memoryStore()
  const bare: SessionStore = { ...Object.fromEntries(['create', 'get', 'touch', 'rotate', 'replace', 'revoke', 'revokeUser', 'listUser', 'increment', 'counter', 'resetCounter', 'decrement', 'stats', 'close'].map((name) => [name, async () => undefined])), scan: async function * () {} } as unknown as SessionStore
  const cases: Array<[unknown, string, RegExp]> = [
    [undefined, 'FST_SESSION_GUARD_INVALID_OPTION', /"migrateSessions": takes an options object/],
    [{ from, to, batch: 5 }, 'FST_SESSION_GUARD_INVALID_OPTION', /"batch": is not an option/],
    [{ from: {}, to }, 'FST_SESSION_GUARD_INVALID_OPTION', /"from": must be a session store/],
    [{ from, to: null }, 'FST_SESSION_GUARD_INVALID_OPTION', /"to": must be a session store/],
    [{ from, to: from }, 'FST_SESSION_GUARD_INVALID_OPTION', /"to": must be another store/],
    [{ from, to, batchSize: 0 }, 'FST_SESSION_GUARD_INVALID_OPTION', /"batchSize"/],
    [{ from, to, counters: 'yes' }, 'FST_SESSION_GUARD_INVALID_OPTION', /"counters": must be a boolean/],
    [{ from, to, prune: 1 }, 'FST_SESSION_GUARD_INVALID_OPTION', /"prune": must be a boolean/],
    [{ from, to, clock: 5 }, 'FST_SESSION_GUARD_INVALID_OPTION', /"clock"/],
    [{ from, to, onProgress: true }, 'FST_SESSION_GUARD_INVALID_OPTION', /"onProgress"/],
    [{ from, to: bare }, 'FST_SESSION_GUARD_STORE_UNSUPPORTED', /does not implement importSessions\(\)/],
    [{ from: bare, to }, 'FST_SESSION_GUARD_STORE_UNSUPPORTED', /does not implement scanCounters\(\)/]
  ]
  for (const [options, code, message] of cases) {
    await t.rejects(migrateSessions(options as Parameters<typeof migrateSessions>[0]), { code, message })
  }
  await from.open({ now: () => 1000, onRemoved: () => {} })
  await from.create({ id: 's1', userId: 'u', fingerprintHash: 'f', createdAt: 0, lastSeenAt: 0, idleExpiresAt: 10_000, absoluteExpiresAt: 10_000, remembered: false }, { max: 3, onLimit: 'reject' }, 1000)
  await from.increment('k', 10_000, 1000)
  const result = await migrateSessions({ from: bare, to, counters: false })
  t.strictSame(result, { sessions: { read: 0, imported: 0, skipped: 0, pruned: 0 }, counters: { read: 0, imported: 0, skipped: 0 } }, 'counters: false needs no counter methods')
  const moved = await migrateSessions({ from, to, clock: () => 1000, counters: false })
  t.strictSame(moved.sessions, { read: 1, imported: 1, skipped: 0, pruned: 0 })
  t.equal(await to.counter('k', 1000), undefined, 'the counters stayed')
  t.ok(await to.get('s1', 1000), 'the session moved (the default clock is the one passed)')
})

leftNoKeys(t)
