import { Writable } from 'node:stream'
import Fastify, { type FastifyBaseLogger, type InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { memoryStore, StoreFullError, StoreUnavailableError, type SessionStore } from '../lib/index.js'
import { FailClosedStore } from '../lib/stores/fail-closed.js'
import { build, SECRET, TestClock } from './helper.js'

const DRIVER_TEXT = 'ECONNRESET 10.0.0.7:6379 driver internals'

/** Makes every method of `store` that the plugin calls per request throw a driver error, until `restore()`. */
function breakable (store: SessionStore): { break: (...methods: Array<keyof SessionStore>) => void, restore: () => void } {
  const saved = new Map<keyof SessionStore, unknown>()
  return {
    break (...methods) {
      for (const method of methods) {
        saved.set(method, store[method])
        ;(store as unknown as Record<string, unknown>)[method] = method === 'scan'
          ? async function * () { yield * []; throw new Error(DRIVER_TEXT) }
          : async () => { throw new Error(DRIVER_TEXT) }
      }
    },
    restore () {
      for (const [method, value] of saved) (store as unknown as Record<string, unknown>)[method] = value
      saved.clear()
    }
  }
}

async function rejection (t: Test, promise: Promise<unknown>, name: string): Promise<void> {
  const err = await promise.then(() => undefined, (err: unknown) => err as { code?: string, statusCode?: number, message?: string })
  t.equal(err?.code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE', `${name}: coded`)
  t.equal(err?.statusCode, 503, `${name}: 503`)
  t.notMatch(err?.message ?? '', /ECONNRESET|driver/, `${name}: no driver text`)
}

t.test('app.sessions fails closed with the coded 503 for every store call, never the driver error', async (t) => {
  const store = memoryStore()
  const { app, login } = await build(t, { store })
  const alice = await login('alice')
  const broken = breakable(store)
  broken.break('listUser', 'get', 'revoke', 'revokeUser', 'stats', 'scan', 'counter', 'increment', 'resetCounter', 'decrement')
  await rejection(t, app.sessions.list('alice'), 'list')
  await rejection(t, app.sessions.get(alice.sessionId), 'get')
  await rejection(t, app.sessions.revoke(alice.sessionId), 'revoke')
  await rejection(t, app.sessions.revokeAll('alice'), 'revokeAll')
  await rejection(t, app.sessions.stats(), 'stats')
  await rejection(t, app.sessions.analytics(), 'analytics (scan)')
  const request = { ip: '192.0.2.1', log: app.log } as never
  await rejection(t, app.sessions.loginAttempts.check(request, 'alice'), 'loginAttempts.check')
  await rejection(t, app.sessions.loginAttempts.fail(request, 'alice'), 'loginAttempts.fail')
  await rejection(t, app.sessions.loginAttempts.succeed(request, 'alice'), 'loginAttempts.succeed')
  broken.restore()
  t.equal((await app.sessions.list('alice')).length, 1, 'nothing was lost: the session is still there')
})

t.test('the session routes, refresh, regenerate and logout answer 503 when the store fails', async (t) => {
  const store = memoryStore()
  const { app, login } = await build(t, { store, routes: { prefix: '/sessions' } }, (app) => {
    app.post('/regenerate', { preHandler: app.requireSession }, async (request, reply) => {
      await request.regenerateSession(reply)
      return 'ok'
    })
  })
  const alice = await login('alice')
  const other = await login('alice')
  const auth = { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint }
  const broken = breakable(store)
  const cases: Array<[string, Array<keyof SessionStore>, InjectOptions]> = [
    ['list', ['listUser'], { method: 'GET', url: '/sessions', headers: auth }],
    ['revoke one', ['listUser'], { method: 'DELETE', url: `/sessions/${other.sessionId}`, headers: auth }],
    ['revoke others', ['revokeUser'], { method: 'POST', url: '/sessions/revoke-others', headers: auth }],
    ['revoke all', ['revokeUser'], { method: 'POST', url: '/sessions/revoke-all', headers: auth }],
    ['logout', ['revoke'], { method: 'POST', url: '/logout', headers: auth }],
    ['regenerate', ['replace'], { method: 'POST', url: '/regenerate', headers: auth }],
    ['refresh', ['rotate'], {
      method: 'POST',
      url: '/refresh',
      headers: { 'x-requested-with': 'fetch', cookie: `${alice.fingerprint}; __Secure-sg-rt=${alice.refreshToken}` }
    }]
  ]
  for (const [name, methods, request] of cases) {
    broken.break(...methods)
    const response = await app.inject(request)
    broken.restore()
    t.equal(response.statusCode, 503, `${name}: 503`)
    t.equal(response.json().code, 'FST_SESSION_GUARD_STORE_UNAVAILABLE', `${name}: coded`)
    t.notMatch(response.body, /ECONNRESET|driver/, `${name}: no driver text`)
  }
  t.equal((await app.sessions.list('alice')).length, 2, 'no failed call changed anything')
})

t.test('the driver error goes to the log once; the store\'s own coded errors pass unchanged', async (t) => {
  const lines: Array<{ msg?: string, err?: { message?: string } }> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const store = memoryStore({ max: 1, onCapacity: 'reject' })
  const app = Fastify({ logger: { level: 'error', stream } })
  t.teardown(() => app.close())
  const clock = new TestClock()
  await app.register(sessionGuard, { secret: SECRET, store, clock: clock.read })
  await app.ready()
  const broken = breakable(store)
  broken.break('get')
  await rejection(t, app.sessions.get('some-id'), 'get')
  broken.restore()
  const logged = lines.filter((line) => line.msg === 'session guard: the session store failed')
  t.equal(logged.length, 1, 'logged once')
  t.equal(logged[0]?.err?.message, DRIVER_TEXT, 'with the cause, for the operator')

  // A store that throws before it returns a promise fails closed the same way.
  store.get = () => { throw new Error(DRIVER_TEXT) }
  await rejection(t, app.sessions.get('some-id'), 'get throwing synchronously')
  broken.restore()
  t.equal(lines.filter((line) => line.msg === 'session guard: the session store failed').length, 2, 'logged too')

  // Already coded: passed on as they are, and not logged as a driver failure.
  for (const coded of [new StoreFullError(), new StoreUnavailableError()]) {
    store.get = async () => { throw coded }
    t.equal(await app.sessions.get('some-id').catch((err: unknown) => err), coded, `${coded.code} passes unchanged`)
  }
  t.equal(lines.filter((line) => line.msg === 'session guard: the session store failed').length, 2, 'coded errors are not logged as driver failures')
})

t.test('FailClosedStore turns every method\'s failure, thrown or rejected, into the coded 503', async (t) => {
  const log = { error () {} } as unknown as FastifyBaseLogger
  const methods = ['create', 'get', 'touch', 'rotate', 'replace', 'revoke', 'revokeUser', 'listUser', 'increment', 'decrement', 'counter', 'resetCounter', 'stats'] as const
  for (const mode of ['rejects', 'throws'] as const) {
    const fail = mode === 'rejects' ? async () => { throw new Error(DRIVER_TEXT) } : () => { throw new Error(DRIVER_TEXT) }
    const broken = Object.fromEntries(methods.map((method) => [method, fail])) as unknown as SessionStore
    const store = new FailClosedStore(broken, log)
    for (const method of methods) {
      const call = (store[method] as (...args: unknown[]) => Promise<unknown>).bind(store)
      await rejection(t, call('a', 'b', 'c'), `${method} ${mode}`)
    }
  }
})
