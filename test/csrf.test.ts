import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { registrationError, SECRET, TestClock } from './helper.js'

interface Line { level: number, reason?: string, origin?: string, msg: string }

/** An app logging at debug into `lines`, with a login and a refresh route; `refresh(headers)` refreshes alice's session by cookie. */
async function logged (t: Test, options: Partial<SessionGuardOptions> = {}) {
  const lines: Line[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: new TestClock().read, ...options })
  app.post('/login', async (_request, reply) => ({ accessToken: (await reply.issueSession({ userId: 'alice' })).accessToken }))
  app.post('/refresh', async (_request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ userId: request.authSession?.userId }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = (login.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
  const refresh = async (headers: Record<string, string>) => await app.inject({ method: 'POST', url: '/refresh', headers: { cookie, ...headers } })
  /** A guarded GET with alice's token in `Authorization`. */
  const me = async (headers: Record<string, string>) => await app.inject({ url: '/me', headers: { cookie, authorization: `Bearer ${login.json().accessToken as string}`, ...headers } })
  const refusals = () => lines.filter((line) => line.msg === 'session guard: cross-site request refused')
  return { refresh, me, refusals }
}

t.test('a CSRF refusal says why: the header by name, a missing Origin, an Origin not allowed; logged at debug with the Origin', async (t) => {
  const { refresh, refusals } = await logged(t, { cookies: { sameSite: 'lax' }, refresh: { csrfHeader: 'X-CSRF', allowedOrigins: ['https://app.example'] } })
  const cases: Array<{ name: string, headers: Record<string, string>, reason: string, message: string, origin?: string }> = [
    { name: 'no header', headers: { origin: 'https://app.example' }, reason: 'csrf_header_missing', message: 'Cross-site request refused: the x-csrf header is missing (any value; a cross-site form cannot send it)', origin: 'https://app.example' },
    { name: 'no Origin', headers: { 'x-csrf': '1' }, reason: 'csrf_origin_missing', message: 'Cross-site request refused: the Origin header is missing' },
    { name: 'a foreign Origin', headers: { 'x-csrf': '1', origin: 'https://evil.example' }, reason: 'csrf_origin_not_allowed', message: 'Cross-site request refused: its Origin is not one of the allowed origins', origin: 'https://evil.example' }
  ]
  for (const c of cases) {
    const response = await refresh(c.headers)
    t.equal(response.statusCode, 403, `${c.name}: 403`)
    t.same(response.json(), { statusCode: 403, code: 'FST_SESSION_GUARD_CSRF', error: 'Forbidden', message: c.message }, `${c.name}: the message says why`)
    const line = refusals().at(-1)
    t.match(line, { level: 20, reason: c.reason }, `${c.name}: logged at debug with its reason`)
    t.equal(line?.origin, c.origin, `${c.name}: and the Origin`)
  }
  t.equal(refusals().length, 3, 'one line per refusal')
  t.notMatch(JSON.stringify((await refresh({ 'x-csrf': '1', origin: 'https://evil.example' })).json()), 'evil', 'the Origin is not repeated to the client')
  t.equal((await refresh({ 'x-csrf': '1', origin: 'https://app.example' })).statusCode, 200, 'the control: header and allowed Origin')
})

t.test('a logged Origin is cut at 256 characters', async (t) => {
  const { refresh, refusals } = await logged(t)
  const origin = `https://${'a'.repeat(400)}.example`
  t.equal((await refresh({ 'x-requested-with': '1', origin })).statusCode, 403)
  t.equal(refusals().at(-1)?.origin, origin.slice(0, 256))
})

t.test('under SameSite=None an http origin is allowed only for the loopback host itself, with or without a port', async (t) => {
  const none = (origin: string): unknown => ({ secret: SECRET, cookies: { sameSite: 'none' }, refresh: { allowedOrigins: [origin] } })
  for (const origin of ['http://localhost', 'http://localhost:3000', 'http://127.0.0.1', 'http://[::1]:5173']) {
    t.equal(await registrationError(none(origin)), undefined, `${origin}: accepted`)
  }
  for (const origin of ['http://localhost.evil.example', 'http://127.0.0.1.nip.io:8080', 'http://app.localhost']) {
    t.match(await registrationError(none(origin)), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /must be https with `cookies\.sameSite: 'none'`/ }, `${origin}: refused, a name under it is anyone's`)
  }
})

t.test('a cookie-carried token on a safe method needs no header, but a foreign Origin is refused and logged with its reason', async (t) => {
  const lines: Line[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => lines.push(JSON.parse(line)) } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: new TestClock().read, accessToken: { transport: 'cookie' } })
  app.post('/login', async (_request, reply) => { await reply.issueSession({ userId: 'alice' }); return await reply.code(204).send() })
  app.route({ method: ['GET', 'HEAD', 'OPTIONS'], url: '/me', preHandler: app.requireSession, handler: async () => ({ ok: true }) })
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = (login.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
  for (const method of ['GET', 'HEAD', 'OPTIONS'] as const) {
    t.equal((await app.inject({ method, url: '/me', headers: { cookie } })).statusCode, 200, `${method} without the CSRF header: a safe method`)
  }
  const foreign = await app.inject({ method: 'GET', url: '/me', headers: { cookie, origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 403)
  t.match(lines.filter((line) => line.msg === 'session guard: cross-site request refused').at(-1), { level: 20, reason: 'csrf_origin_not_allowed', origin: 'https://evil.example' })
})

t.test('the guard refuses an event stream or a WebSocket upgrade from a foreign Origin, logged with its reason; any other request it leaves to CORS', async (t) => {
  const { me, refusals } = await logged(t)
  const foreign = 'https://evil.example'
  for (const [name, headers] of [['an event stream', { accept: 'text/event-stream' }], ['a WebSocket upgrade', { upgrade: 'websocket', connection: 'upgrade' }]] as const) {
    const refused = await me({ ...headers, origin: foreign })
    t.same({ status: refused.statusCode, code: refused.json().code }, { status: 403, code: 'FST_SESSION_GUARD_CSRF' }, `${name} from ${foreign}`)
    t.match(refusals().at(-1), { level: 20, reason: 'csrf_origin_not_allowed', origin: foreign }, `${name}: logged at debug with its reason`)
  }
  t.equal((await me({ accept: 'text/event-stream', origin: 'http://localhost:80' })).statusCode, 200, 'an event stream from the app\'s own origin')
  const before = refusals().length
  t.equal((await me({ accept: 'application/json', origin: foreign })).statusCode, 200, 'a fetch with its token in Authorization, whatever its Origin: CORS decides who reads it')
  t.equal((await me({ origin: foreign })).statusCode, 200, 'and without Accept')
  t.equal(refusals().length, before, 'nothing refused')
})
