import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { sessionLimitResponseSchema, type SessionGuardOptions } from '../lib/index.js'
import { postgresStore } from '../lib/stores/postgres/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { build, type Credentials, type Harness, registrationError, SECRET, settle } from './helper.js'
import { leftNoSchemas, POSTGRES_URL, postgresTest, testPool, testSchema } from './stores/postgres-helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * Limits per device type (`deviceTypeLimits`) through the plugin: the options,
 * what each limit does to a login, the 409 and its ticket, and parallel logins
 * of one type over real HTTP on every store. The store contract itself is in
 * the conformance suite (`lib/testing/limit-cases.ts`).
 */

const DESKTOP = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0'
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1'
const TABLET = 'Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1'

async function withRoutes (t: Test, options: Partial<SessionGuardOptions>): Promise<Harness> {
  return await build(t, { routes: { prefix: '/sessions' }, ...options }, (app: FastifyInstance) => {
    app.post<{ Body: { userId: string } }>('/login-limited', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
      const { accessToken, session } = await reply.issueSession({ userId: request.body.userId })
      return { accessToken, sessionId: session.id }
    })
  })
}

async function loginFrom (h: Harness, userAgent: string, userId = 'alice', url = '/login'): Promise<Credentials> {
  const response = await h.app.inject({ method: 'POST', url, payload: { userId }, headers: { 'user-agent': userAgent } })
  const cookies = response.cookies as Array<{ name: string, value: string }>
  return {
    accessToken: response.json().accessToken,
    sessionId: response.json().sessionId,
    fingerprint: `__Host-sg-fp=${cookies.find((c) => c.name === '__Host-sg-fp')?.value}`,
    refreshToken: cookies.find((c) => c.name === '__Secure-sg-rt')?.value as string,
    response
  }
}

t.test('deviceTypeLimits is checked at registration, each bad value with a coded error naming it', async (t) => {
  const refused = async (deviceTypeLimits: unknown, more: Record<string, unknown> = {}): Promise<unknown> =>
    await registrationError({ secret: SECRET, deviceTypeLimits, ...more })
  const invalid = (message: RegExp): object => ({ code: 'FST_SESSION_GUARD_INVALID_OPTION', message })
  t.match(await refused({ phone: { max: 1 } }), invalid(/deviceTypeLimits\.phone.*is not a device type \(desktop, mobile, tablet, bot, unknown\)/), 'an unknown device type, with the known ones')
  t.match(await refused('mobile'), invalid(/deviceTypeLimits.*must be an object/))
  t.match(await refused(null), invalid(/deviceTypeLimits.*must be an object/))
  t.match(await refused({ mobile: 1 }), invalid(/deviceTypeLimits\.mobile.*must be an object/), 'a bare number is not a limit')
  t.match(await refused({ mobile: {} }), invalid(/deviceTypeLimits\.mobile\.max.*positive integer, got undefined/), 'max is required')
  t.match(await refused({ mobile: { max: 0 } }), invalid(/deviceTypeLimits\.mobile\.max.*positive integer, got 0/), 'max < 1')
  t.match(await refused({ tablet: { max: 1.5 } }), invalid(/deviceTypeLimits\.tablet\.max/), 'not an integer')
  t.match(await refused({ mobile: { max: 4 } }, { maxSessionsPerUser: 3 }), invalid(/deviceTypeLimits\.mobile\.max.*at most maxSessionsPerUser \(3\), got 4/), 'above the total')
  t.match(await refused({ mobile: { max: 16 } }), invalid(/at most maxSessionsPerUser \(15\)/), 'above the default total')
  t.match(await refused({ mobile: { max: 1, onLimit: 'evict' } }), invalid(/deviceTypeLimits\.mobile\.onLimit.*'evict-oldest' or 'reject', got "evict"/))
  t.match(await refused({ mobile: { max: 1, limit: 2 } }), invalid(/deviceTypeLimits\.mobile\.limit.*not an option/), 'an unknown name inside a limit')
  t.equal(await refused({ mobile: { max: 3 }, unknown: { max: 1, onLimit: 'reject' }, bot: undefined }, { maxSessionsPerUser: 3 }), undefined, 'a max equal to the total, unknown devices, an absent entry')
})

t.test('a phone at its limit signs out the least recently active phone, not an older desktop', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 5, deviceTypeLimits: { mobile: { max: 1 } } })
  const desktop = await loginFrom(h, DESKTOP)
  const phone = await loginFrom(h, PHONE)
  const tablet = await loginFrom(h, TABLET)
  const revoked: string[] = []
  h.app.sessions.events.on('session.revoked', (event) => revoked.push(`${event.sessionId}:${event.reason}`))
  const newPhone = await loginFrom(h, PHONE)
  t.equal(newPhone.response.statusCode, 200)
  await settle()
  t.strictSame(revoked, [`${phone.sessionId}:limit`], 'the old phone went, reported as a limit revocation')
  t.equal((await h.me(phone)).statusCode, 401)
  for (const other of [desktop, tablet, newPhone]) t.equal((await h.me(other)).statusCode, 200, 'the desktop and the tablet stay')
})

t.test('a type\'s onLimit defaults to onSessionLimit, and each limit keeps its own', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 3, onSessionLimit: 'reject', deviceTypeLimits: { mobile: { max: 1 }, tablet: { max: 1, onLimit: 'evict-oldest' } } })
  await loginFrom(h, PHONE)
  t.equal((await loginFrom(h, PHONE, 'alice', '/login-limited')).response.statusCode, 409, 'mobile: the total\'s reject')
  const tablet = await loginFrom(h, TABLET)
  t.equal((await loginFrom(h, TABLET)).response.statusCode, 200, 'tablet: its own evict-oldest')
  t.equal((await h.me(tablet)).statusCode, 401)
  await loginFrom(h, DESKTOP)
  const full = await loginFrom(h, DESKTOP, 'alice', '/login-limited')
  t.equal(full.response.statusCode, 409, 'the total still applies to a type without a limit of its own')
  t.equal(full.response.json().deviceType, undefined, 'refused by the total: no device type')
  t.equal(full.response.json().sessions.length, 3, 'every session offered')
})

t.test('a type refusal: the 409 offers only that type\'s sessions, and its ticket signs out only one of them', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 5, deviceTypeLimits: { mobile: { max: 2, onLimit: 'reject' } } })
  const desktop = await loginFrom(h, DESKTOP)
  const phones = [await loginFrom(h, PHONE), await loginFrom(h, PHONE)]
  const rejected: string[] = []
  h.app.sessions.events.on('auth.rejected', (event) => rejected.push(event.reason))

  const refused = await loginFrom(h, PHONE, 'alice', '/login-limited')
  t.equal(refused.response.statusCode, 409)
  const body = refused.response.json()
  t.equal(body.code, 'FST_SESSION_GUARD_SESSION_LIMIT')
  t.equal(body.deviceType, 'mobile')
  t.strictSame(body.sessions.map((s: { id: string }) => s.id).sort(), phones.map((p) => p.sessionId).sort(), 'the phones only')
  t.equal((await h.app.sessions.list('alice')).length, 3, 'nothing changed')

  const resolve = async (revoke: string, userAgent = PHONE) => await h.app.inject({
    method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: body.ticket, revoke }, headers: { cookie: refused.fingerprint, 'user-agent': userAgent }
  })
  t.equal((await resolve(desktop.sessionId)).statusCode, 401, 'signing out the desktop frees no phone slot: not offered')
  t.equal((await resolve(phones[0]!.sessionId, DESKTOP)).statusCode, 401, 'nor a phone slot for a desktop login')
  await settle()
  t.strictSame(rejected, ['unknown_session', 'stale_ticket'])
  t.equal((await h.me(desktop)).statusCode, 200)
  t.equal((await h.me(phones[0]!)).statusCode, 200, 'the refused attempts signed nothing out')

  // A desktop signed in meanwhile does not make the ticket stale: it offered the phones.
  await loginFrom(h, DESKTOP)
  const done = await resolve(phones[0]!.sessionId)
  t.equal(done.statusCode, 200)
  t.equal((await h.me(phones[0]!)).statusCode, 401, 'the picked phone is signed out')
  t.equal((await h.me(phones[1]!)).statusCode, 200)
  const listed = await h.app.sessions.list('alice')
  t.strictSame(listed.map((s) => s.device?.type).sort(), ['desktop', 'desktop', 'mobile', 'mobile'])
})

t.test('a limit ticket of a type goes stale when that type\'s sessions change', async (t) => {
  const h = await withRoutes(t, { maxSessionsPerUser: 5, deviceTypeLimits: { tablet: { max: 1, onLimit: 'reject' } } })
  const tablet = await loginFrom(h, TABLET)
  const refused = await loginFrom(h, TABLET, 'alice', '/login-limited')
  await h.app.sessions.revoke(tablet.sessionId)
  const other = await loginFrom(h, TABLET)
  const late = await h.app.inject({
    method: 'POST', url: '/sessions/resolve-limit', payload: { ticket: refused.response.json().ticket, revoke: other.sessionId }, headers: { cookie: refused.fingerprint, 'user-agent': TABLET }
  })
  t.equal(late.statusCode, 401)
  t.equal((await h.me(other)).statusCode, 200)
})

/** 50 logins from phones at once, over real HTTP, against the plugin on `store`. */
function parallelLogins (t: Test, storeOptions: (t: Test) => Promise<Partial<SessionGuardOptions>>): void {
  for (const onLimit of ['evict-oldest', 'reject'] as const) {
    t.test(`50 parallel phone logins end at the phone limit (${onLimit})`, async (t) => {
      const h = await withRoutes(t, { ...await storeOptions(t), maxSessionsPerUser: 10, onSessionLimit: 'reject', deviceTypeLimits: { mobile: { max: 2, onLimit } } })
      await loginFrom(h, DESKTOP)
      await loginFrom(h, TABLET)
      await h.app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = h.app.server.address() as { port: number }
      const statuses = await Promise.all(Array.from({ length: 50 }, async () => {
        const response = await fetch(`http://127.0.0.1:${port}/login-limited`, {
          method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': PHONE }, body: JSON.stringify({ userId: 'alice' })
        })
        await response.arrayBuffer()
        return response.status
      }))
      const listed = await h.app.sessions.list('alice')
      t.strictSame(listed.map((s) => s.device?.type).sort(), ['desktop', 'mobile', 'mobile', 'tablet'], 'two phones, and the others untouched')
      t.equal(statuses.filter((status) => status === 200).length, onLimit === 'reject' ? 2 : 50)
      t.equal(statuses.filter((status) => status === 409).length, onLimit === 'reject' ? 48 : 0)
    })
  }
}

t.test('memory store', async (t) => {
  parallelLogins(t, async () => ({}))
})

redisTest(t, 'Redis store', async (t) => {
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  parallelLogins(t, async (t) => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    return { store: redisStore({ connection: REDIS_URL, prefix }) }
  })
})

postgresTest(t, 'PostgreSQL store', async (t) => {
  const admin = testPool()
  t.teardown(async () => await admin.end())
  parallelLogins(t, async (t) => {
    // Fifty logins of one user queue behind its lock: a generous timeout on a busy machine.
    return { store: postgresStore({ connection: POSTGRES_URL, schema: await testSchema(t, admin), queryTimeoutMs: 10_000, purge: { intervalMs: 0 } }) }
  })
})

leftNoKeys(t)
leftNoSchemas(t)
