import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { type MemoryStore, memoryStore, sessionLimitResponseSchema, type SessionStore } from '../../lib/index.js'
import { redisStore } from '../../lib/stores/redis/index.js'
import { type Harness, MINUTE } from '../helper.js'
import { leftNoKeys, REDIS_URL, redisTest, testPrefix } from '../stores/redis-helper.js'
import { setup } from './setup.js'

/**
 * A session-limit ticket signs one session out and completes one login. Sent
 * several times at once, naming a different session each time, it must still
 * do that once: the check and the use of a ticket are one atomic store step.
 */

const SESSIONS = 4

interface Server { h: Harness, base: string }

async function serve (t: Test, store: SessionStore): Promise<Server> {
  const h = await setup(t, { store, routes: { prefix: '/sessions' }, maxSessionsPerUser: SESSIONS, onSessionLimit: 'reject' }, (app) => {
    app.post<{ Body: { userId: string } }>('/login-limited', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
      const { accessToken, session } = await reply.issueSession({ userId: request.body.userId })
      return { accessToken, sessionId: session.id }
    })
  })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  return { h, base: `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}` }
}

/**
 * The memory store answers within the turn, so parallel requests would never
 * overlap in it. Once armed, this holds each `listUser` until every one of
 * `callers` has asked (once), as a store across the network lets them overlap.
 */
function overlapping (store: MemoryStore, callers: number): { store: MemoryStore, arm: () => void } {
  const listUser = store.listUser.bind(store)
  let held: Array<() => void> | undefined
  store.listUser = async (userId, now) => {
    const sessions = await listUser(userId, now)
    const waiting = held
    if (waiting !== undefined) {
      await new Promise<void>((resolve) => {
        waiting.push(resolve)
        if (waiting.length < callers) return
        held = undefined
        for (const release of waiting) release()
      })
    }
    return sessions
  }
  return { store, arm: () => { held = [] } }
}

/** Fills alice's sessions, has one more login refused, then sends its ticket once per session, all at once. */
async function raceOneTicket (t: Test, { h, base }: Server, arm = (): void => {}): Promise<void> {
  const sessions: string[] = []
  for (let i = 0; i < SESSIONS; i++) sessions.push((await h.login('alice')).sessionId)
  const refused = await fetch(`${base}/login-limited`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'alice' }) })
  t.equal(refused.status, 409)
  const { ticket } = await refused.json() as { ticket: string }
  const cookie = (refused.headers.get('set-cookie') as string).split(';')[0] as string

  arm()
  const statuses = await Promise.all(sessions.map(async (revoke) => (await fetch(`${base}/sessions/resolve-limit`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ ticket, revoke })
  })).status))
  t.same(statuses.filter((status) => status === 200).length, 1, `exactly one completes (${statuses.join(', ')})`)
  t.same(statuses.filter((status) => status === 401).length, SESSIONS - 1, 'the others are refused')
  const left = (await h.app.sessions.list('alice')).map((session) => session.id)
  t.equal(sessions.filter((id) => !left.includes(id)).length, 1, 'exactly one session signed out')
  t.equal(left.length, SESSIONS, 'and one created in its place')
  // Refused as used, or as stale when it came after the winner had changed the sessions.
  const { used_ticket: used = 0, stale_ticket: stale = 0 } = (await h.app.sessions.stats()).events.rejected
  t.equal(used + stale, SESSIONS - 1, `refused as a used (${used}) or stale (${stale}) ticket`)
}

t.test('one ticket sent at once naming different sessions: one completes (memory store)', async (t) => {
  const { store, arm } = overlapping(memoryStore(), SESSIONS)
  const uses: Array<[string, number]> = []
  const increment = store.increment.bind(store)
  store.increment = async (key, windowMs, now) => {
    if (key.startsWith('limit-ticket:')) uses.push([key, windowMs])
    return await increment(key, windowMs, now)
  }
  await raceOneTicket(t, await serve(t, store), arm)
  t.equal(new Set(uses.map(([key]) => key)).size, 1, 'every use counted under one key')
  // The ticket has its 5 minutes left (the clock stood still): the counter outlives it by as long again.
  t.same(uses.map(([, windowMs]) => windowMs), Array(SESSIONS).fill(10 * MINUTE))
})

redisTest(t, 'one ticket sent at once naming different sessions: one completes (Redis store)', async (t) => {
  await raceOneTicket(t, await serve(t, redisStore({ connection: REDIS_URL, prefix: testPrefix(t) })))
})

leftNoKeys(t)
