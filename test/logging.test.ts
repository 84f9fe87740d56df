import Fastify from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { SECRET, TestClock } from './helper.js'

interface Line { level: number, type?: string, reason?: string, msg: string }

// pino's numeric levels.
const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

/** An app logging at trace into `lines`, with a login route, a guarded route and a password route. */
async function logged (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const lines: Line[] = []
  const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: new TestClock().read, lockout: { usernameFreeAttempts: 1 }, ...options })
  app.post('/login', async (_request, reply) => ({ accessToken: (await reply.issueSession({ userId: 'alice' })).accessToken }))
  app.get('/me', { preHandler: app.requireSession }, async () => 'ok')
  app.post<{ Body: { username: string } }>('/password-login', async (request, reply) => {
    await app.sessions.loginAttempts.check(request, request.body.username)
    await app.sessions.loginAttempts.fail(request, request.body.username)
    return await reply.code(401).send()
  })
  const run = async () => {
    await app.inject({ method: 'POST', url: '/login' })
    await app.inject({ method: 'GET', url: '/me' })
    for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/password-login', payload: { username: 'alice' } })
  }
  const levelOf = (type: string) => lines.filter((line) => line.type === type).map((line) => line.level)
  return { app, lines, run, levelOf }
}

t.test('refusals are logged at debug and lockouts at warn by default', async (t) => {
  const { run, levelOf } = await logged(t)
  await run()
  t.same(levelOf('auth.rejected'), [LEVEL.debug], 'a 401 is routine: debug, not a line per refusal at info')
  t.same(levelOf('login.failed'), [LEVEL.info])
  t.same(levelOf('login.locked'), [LEVEL.warn, LEVEL.warn])
  t.same(levelOf('session.created'), [LEVEL.info])
})

t.test('each event takes the level the app gives it; silent writes no line', async (t) => {
  const events: string[] = []
  const { run, levelOf, lines } = await logged(t, {
    logging: { levels: { 'auth.rejected': 'info', 'login.locked': 'error', 'session.created': 'silent' } },
    onEvent: (event) => events.push(event.type)
  })
  await run()
  t.same(levelOf('auth.rejected'), [LEVEL.info])
  t.same(levelOf('login.locked'), [LEVEL.error, LEVEL.error])
  t.same(levelOf('session.created'), [], 'silent: no line')
  t.same(levelOf('login.failed'), [LEVEL.info], 'the others keep their default')
  t.ok(lines.length > 0)
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(events.includes('session.created'), 'a silent event still reaches listeners')
})

t.test('the logging option is checked', async (t) => {
  for (const [option, logging] of [
    ['logging', 'debug'],
    ['logging.level', { level: 'debug' }],
    ['logging.levels', { levels: 'debug' }],
    ['logging.levels.auth.refused', { levels: { 'auth.refused': 'debug' } }],
    ['logging.levels.auth.rejected', { levels: { 'auth.rejected': 'verbose' } }],
    ['logging.levels.login.locked', { levels: { 'login.locked': 40 } }]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(sessionGuard, { secret: SECRET, logging: logging as never })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: `Invalid option "${option}"` }, option)
  }
})
