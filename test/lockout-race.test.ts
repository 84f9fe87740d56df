import t, { type Test } from 'tap'
import { memoryStore, type SessionGuardOptions } from '../lib/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { type Harness, registrationError, SECRET } from './helper.js'
import { withLogin } from './login-helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * Parallel bursts against the lockout, over real HTTP. The login route is the
 * example's (check, verify, then fail or succeed), and its password check is
 * slow: it waits until the test opens a gate, as a real hash takes its time,
 * so every attempt of a burst is decided while the others are still checking.
 */

interface LoginServer {
  h: Harness
  /** Sends one login attempt; resolves to the status and Retry-After. */
  attempt: (username: string, password: string) => Promise<{ status: number, retryAfter: string | null }>
  /** Passwords the route has checked so far. */
  checked: () => number
  /** Resolves once `count` attempts in all have been decided: refused by the lockout or handed to the password check. */
  decided: (count: number) => Promise<void>
  /** Lets every password check waiting, and every later one, finish. */
  open: () => void
}

async function loginServer (t: Test, options: Partial<SessionGuardOptions> = {}): Promise<LoginServer> {
  let checked = 0
  let decidedCount = 0
  const waiting: Array<{ count: number, resolve: () => void }> = []
  let open!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  const decide = (): void => {
    decidedCount++
    for (const waiter of waiting) if (decidedCount >= waiter.count) waiter.resolve()
  }
  const h = await withLogin(t, {
    ...options,
    // Every refusal is published as login.locked.
    onEvent: (event) => { if (event.type === 'login.locked') decide() }
  }, async (_username, password) => {
    checked++
    decide()
    await gate
    return password === 'right'
  })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as { port: number }

  return {
    h,
    async attempt (username, password) {
      const response = await fetch(`http://127.0.0.1:${port}/password-login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password })
      })
      await response.arrayBuffer()
      return { status: response.status, retryAfter: response.headers.get('retry-after') }
    },
    checked: () => checked,
    decided: async (count) => {
      if (decidedCount >= count) return
      await new Promise<void>((resolve) => waiting.push({ count, resolve }))
    },
    open
  }
}

function tally (statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** The cases, for any store. */
function bursts (t: Test, storeOptions: () => Partial<SessionGuardOptions>): void {
  t.test('24 wrong passwords at once check 5, and the right one in the burst is refused', async (t) => {
    const server = await loginServer(t, storeOptions())
    const wrong = Array.from({ length: 24 }, async () => await server.attempt('alice', 'wrong'))
    await server.decided(24)
    const right = server.attempt('alice', 'right')
    await server.decided(25)
    server.open()
    const answers = await Promise.all(wrong)
    const rightAnswer = await right

    t.equal(server.checked(), 5, 'exactly the 5 free attempts reached the password check')
    t.strictSame(tally(answers.map((answer) => answer.status)), { 401: 5, 429: 19 })
    t.equal(rightAnswer.status, 429, 'the right password, once the budget is spent, is refused unchecked')
    t.equal(rightAnswer.retryAfter, '1', 'locked as after 5 failures in a row, not longer')

    server.h.clock.advance(1000)
    t.equal((await server.attempt('alice', 'right')).status, 200, 'the burst left the lockout of 5 failures: after it, the right password works')
  })

  t.test('a burst across usernames from one IP checks only the IP\'s free attempts', async (t) => {
    const server = await loginServer(t, { ...storeOptions(), lockout: { ipFreeAttempts: 3 } })
    const wrong = Array.from({ length: 12 }, async (_, i) => await server.attempt(`user-${i}`, 'wrong'))
    await server.decided(12)
    const right = server.attempt('user-x', 'right')
    await server.decided(13)
    server.open()
    const answers = await Promise.all(wrong)
    t.equal(server.checked(), 3)
    t.strictSame(tally(answers.map((answer) => answer.status)), { 401: 3, 429: 9 })
    t.equal((await right).status, 429)
  })

  t.test('checks that all read the counters before any attempt is counted: the late ones are refused and not counted', async (t) => {
    const { h } = await loginServer(t, storeOptions())
    const check = async (): Promise<void> => await h.app.sessions.loginAttempts.check({ ip: '192.0.2.7', log: h.app.log } as never, 'bob')
    const results = await Promise.allSettled(Array.from({ length: 24 }, check))
    t.equal(results.filter(({ status }) => status === 'fulfilled').length, 5, 'the 5 free attempts go ahead')
    const refusals = results.flatMap((result) => result.status === 'rejected' ? [result.reason as { code: string, headers: Record<string, string> }] : [])
    t.equal(refusals.length, 19)
    t.ok(refusals.every(({ code, headers }) => code === 'FST_SESSION_GUARD_LOGIN_LOCKED' && headers['retry-after'] === '1'))
    // The 5 were never answered, so they are failures; the 19 refused ones left nothing behind.
    await t.rejects(check(), { code: 'FST_SESSION_GUARD_LOGIN_LOCKED', headers: { 'retry-after': '1' } }, 'locked as after 5 failures')
    h.clock.advance(1000)
    await check()
    await t.rejects(check(), { code: 'FST_SESSION_GUARD_LOGIN_LOCKED', headers: { 'retry-after': '2' } }, 'the 6th attempt doubled the lockout, as it would one after another')
  })

  t.test('a burst after earlier failures checks only the free attempts left', async (t) => {
    const { h } = await loginServer(t, storeOptions())
    const check = async (): Promise<void> => await h.app.sessions.loginAttempts.check({ ip: '192.0.2.8', log: h.app.log } as never, 'dave')
    await check()
    const results = await Promise.allSettled(Array.from({ length: 12 }, check))
    t.equal(results.filter(({ status }) => status === 'fulfilled').length, 4, '4 of the 5 free attempts were left')
  })

  t.test('a burst once a lockout is over: one goes ahead, the rest wait for the lockout it leaves', async (t) => {
    const { h } = await loginServer(t, storeOptions())
    const check = async (): Promise<void> => await h.app.sessions.loginAttempts.check({ ip: '192.0.2.9', log: h.app.log } as never, 'erin')
    for (let i = 0; i < 5; i++) await check()
    h.clock.advance(1000)
    const results = await Promise.allSettled(Array.from({ length: 3 }, check))
    t.equal(results.filter(({ status }) => status === 'fulfilled').length, 1, 'the 6th failure')
    const refusals = results.flatMap((result) => result.status === 'rejected' ? [result.reason as { headers: Record<string, string> }] : [])
    t.strictSame(refusals.map(({ headers }) => headers['retry-after']), ['2', '2'], 'locked as after 6 failures: 2 s, not the 1 s of 5')
  })

  t.test('successful logins do not use up the IP\'s attempts; an attempt left unanswered counts as a failure', async (t) => {
    const server = await loginServer(t, { ...storeOptions(), lockout: { ipFreeAttempts: 3 } })
    server.open()
    const answers: number[] = []
    for (let i = 0; i < 10; i++) answers.push((await server.attempt(`user-${i}`, 'right')).status)
    t.strictSame(tally(answers), { 200: 10 }, 'ten users of one office log in, one after another')

    // A route that checks and then neither fails nor succeeds (the password check threw):
    // the attempt stays counted, so a crashing check cannot be used to guess for free.
    const request = { ip: '127.0.0.1', log: server.h.app.log } as never
    for (let i = 0; i < 3; i++) await server.h.app.sessions.loginAttempts.check(request, `crash-${i}`)
    t.equal((await server.attempt('user-y', 'right')).status, 429, 'three unanswered attempts used the IP\'s three')
  })
}

t.test('a store without decrement() is refused at registration: the lockout takes back attempts with it', async (t) => {
  const store = memoryStore()
  const old = Object.assign(Object.create(Object.getPrototypeOf(store) as object) as object, { decrement: undefined })
  t.match(await registrationError({ secret: SECRET, store: old }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /store.*decrement\(\)/ })
})

t.test('memory store', async (t) => {
  bursts(t, () => ({}))
})

redisTest(t, 'Redis store', async (t) => {
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  bursts(t, () => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    return { store: redisStore({ connection: REDIS_URL, prefix }) }
  })
})

leftNoKeys(t)
