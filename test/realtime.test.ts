import { Agent, get as httpGet, request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import Fastify, { type FastifyRequest } from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import WebSocket from 'ws'
import sessionGuard, { memoryStore, type SessionGuardOptions, type SessionWatch, type TokenExtractor } from '../lib/index.js'
import { SECRET, TestClock, MINUTE, settle } from './helper.js'
import { fromProtocol, fromQuery, PROTOCOL, realtime } from './realtime-helper.js'

/**
 * The guard on a WebSocket route (`@fastify/websocket`) and an SSE route, over
 * real HTTP: the token rides in `Sec-WebSocket-Protocol` or the query, the
 * fingerprint cookie as usual; a foreign Origin is refused; a watched
 * connection is closed on the check after its session is revoked or expires.
 */

type Opened = { socket: WebSocket, greeting: string } | { status: number, body: { code?: string } }

/** Opens a WebSocket; resolves its first message, or the HTTP answer that refused the upgrade. */
async function open (url: string, { protocols, headers = {} }: { protocols?: string[], headers?: Record<string, string> }): Promise<Opened> {
  return await new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols, { headers })
    socket.once('message', (data) => resolve({ socket, greeting: String(data) }))
    socket.once('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += String(chunk) })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(body) }))
    })
    socket.once('error', reject)
  })
}

async function closed (socket: WebSocket): Promise<{ code: number, reason: string }> {
  return await new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })))
}

function refused (t: Test, opened: Opened, status: number, code: string, message: string): void {
  t.ok('status' in opened, `${message}: refused before the upgrade`)
  if ('status' in opened) t.same({ status: opened.status, code: opened.body.code }, { status, code }, message)
}

/** Opens an event stream; resolves its response and the first chunk. */
async function stream (url: string, headers: Record<string, string>): Promise<{ response: IncomingMessage, first: string }> {
  return await new Promise((resolve, reject) => {
    httpGet(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      response.once('data', (chunk: Buffer) => resolve({ response, first: String(chunk) }))
    }).once('error', reject)
  })
}

async function rest (response: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of response) body += String(chunk)
  return body
}

t.test('WebSocket: the token in Sec-WebSocket-Protocol and the fingerprint cookie let it in', async (t) => {
  const { base, login } = await realtime(t)
  const alice = await login('alice')
  const opened = await open(`${base.replace('http', 'ws')}/ws`, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie, origin: base } })
  t.ok('socket' in opened)
  if (!('socket' in opened)) return
  t.equal(opened.greeting, 'hello alice')
  t.equal(opened.socket.protocol, PROTOCOL, 'the server answers the protocol name, never the token')
  opened.socket.close()
  await closed(opened.socket)
})

t.test('WebSocket refusals: no token, no fingerprint cookie, a malformed token, a foreign Origin', async (t) => {
  const { app, base, login } = await realtime(t)
  const reasons: string[] = []
  app.sessions.events.on('auth.rejected', (event) => reasons.push(event.reason))
  const alice = await login('alice')
  const url = `${base.replace('http', 'ws')}/ws`
  refused(t, await open(url, { headers: { cookie: alice.cookie, origin: base } }), 401, 'FST_SESSION_GUARD_UNAUTHORIZED', 'no token')
  refused(t, await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { origin: base } }), 401, 'FST_SESSION_GUARD_UNAUTHORIZED', 'no fingerprint cookie')
  const bob = await login('bob')
  refused(t, await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: bob.cookie, origin: base } }), 401, 'FST_SESSION_GUARD_UNAUTHORIZED', 'another session\'s fingerprint cookie')
  refused(t, await open(url, { protocols: [PROTOCOL, 'not-a-token'], headers: { cookie: alice.cookie, origin: base } }), 401, 'FST_SESSION_GUARD_UNAUTHORIZED', 'a malformed token')
  refused(t, await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie, origin: 'https://evil.example' } }), 403, 'FST_SESSION_GUARD_CSRF', 'a foreign Origin')
  refused(t, await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie, origin: base.replace('127.0.0.1', 'localhost') } }), 403, 'FST_SESSION_GUARD_CSRF', 'another origin of the same host')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(reasons, ['missing_token', 'missing_fingerprint', 'fingerprint_mismatch', 'malformed_token', 'foreign_origin', 'foreign_origin'])
})

t.test('WebSocket with the access token cookie (accessToken.transport): no extractor needed; a foreign Origin refused', async (t) => {
  const { app, base } = await realtime(t, { accessToken: { transport: 'both' } })
  const response = await app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' } })
  const cookies = (response.cookies as Array<{ name: string, value: string }>)
    .filter(({ name }) => name === 'sg-fp' || name === 'sg-at')
    .map(({ name, value }) => `${name}=${value}`)
  t.equal(cookies.length, 2, 'the fingerprint and access token cookies, as a browser sends them to /ws')
  const url = `${base.replace('http', 'ws')}/ws`
  const opened = await open(url, { headers: { cookie: cookies.join('; '), origin: base } })
  t.ok('socket' in opened, 'the upgrade carries both cookies and no token elsewhere')
  if (!('socket' in opened)) return
  t.equal(opened.greeting, 'hello alice')
  opened.socket.close()
  await closed(opened.socket)
  refused(t, await open(url, { headers: { cookie: cookies.join('; '), origin: 'https://evil.example' } }), 403, 'FST_SESSION_GUARD_CSRF', 'a foreign Origin, cookies and all')
  refused(t, await open(url, { headers: { cookie: cookies.filter((cookie) => cookie.startsWith('sg-fp=')).join('; '), origin: base } }), 401, 'FST_SESSION_GUARD_UNAUTHORIZED', 'the fingerprint cookie alone')
})

t.test('WebSocket: refresh.allowedOrigins is the one allow-list', async (t) => {
  const { base, login } = await realtime(t, { refresh: { allowedOrigins: ['https://app.example'] } })
  const alice = await login('alice')
  const url = `${base.replace('http', 'ws')}/ws`
  const opened = await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie, origin: 'https://app.example' } })
  t.ok('socket' in opened, 'a listed origin')
  if ('socket' in opened) opened.socket.close()
  refused(t, await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie, origin: base } }), 403, 'FST_SESSION_GUARD_CSRF', 'its own origin, not listed')
})

t.test('WebSocket: revoked from another device, the socket is closed on the next check', async (t) => {
  const { app, base, login, ended } = await realtime(t)
  const alice = await login('alice')
  const opened = await open(`${base.replace('http', 'ws')}/ws`, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in opened)) return t.fail('not opened')
  const close = closed(opened.socket)
  await app.sessions.revoke(alice.sessionId)
  t.same(await close, { code: 4401, reason: 'session revoked' })
  t.same(ended, ['revoked'])
})

t.test('WebSocket: an expired session is closed on the next check', async (t) => {
  const { base, clock, login, ended } = await realtime(t)
  const alice = await login('alice')
  const opened = await open(`${base.replace('http', 'ws')}/ws`, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in opened)) return t.fail('not opened')
  const close = closed(opened.socket)
  clock.advance(30 * MINUTE)
  t.same(await close, { code: 4401, reason: 'session expired' })
  t.same(ended, ['expired'])
})

t.test('WebSocket: a session challenged while open (step-up) is closed on the next check, unless the route allows it', async (t) => {
  const allowed: SessionWatch[] = []
  const { base, login, ended, watches } = await realtime(t, { anomalies: { ipChange: 'challenge' }, touchInterval: 0 }, 20, (app) => {
    app.get('/me', { preHandler: app.requireSession }, async () => 'me')
    app.get('/ws-step-up', { websocket: true, preHandler: app.requireSession, config: { extractToken: fromProtocol, allowChallenged: true } }, (socket, request) => {
      socket.send('step up here')
      allowed.push(request.watchSession({ every: 20, onEnd: (reason) => socket.close(4401, `session ${reason}`) }))
    })
  })
  const alice = await login('alice')
  const url = `${base.replace('http', 'ws')}`
  const live = await open(`${url}/ws`, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  const stepUp = await open(`${url}/ws-step-up`, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in live) || !('socket' in stepUp)) return t.fail('not opened')
  const close = closed(live.socket)
  // One request from another address: the rule challenges the session, and every later request needs the step-up.
  const moved = await new Promise<IncomingMessage>((resolve, reject) => httpGet(`${base}/me`, { localAddress: '127.0.1.2', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } }, resolve).once('error', reject))
  t.same([moved.statusCode, JSON.parse(await rest(moved)).code], [401, 'FST_SESSION_GUARD_STEP_UP_REQUIRED'])
  const stillLive = await (watches[0] as SessionWatch).check()
  t.equal(stillLive, false, 'the watch finds the step-up')
  if (!stillLive) t.same(await close, { code: 4401, reason: 'session step_up' }, 'the open socket is closed too')
  t.same(ended, ['step_up'])
  t.equal(await (allowed[0] as SessionWatch).check(), true, 'a route with allowChallenged keeps its socket')
  t.equal(stepUp.socket.readyState, WebSocket.OPEN)
  stepUp.socket.close()
  await closed(stepUp.socket)
})

t.test('SSE: the token in the query; a foreign Origin refused; a revoked session ends the stream', async (t) => {
  const { app, base, login, ended } = await realtime(t)
  const alice = await login('alice')
  const url = `${base}/events?access_token=${alice.accessToken}`

  const foreign = await new Promise<IncomingMessage>((resolve) => httpGet(url, { headers: { accept: 'text/event-stream', cookie: alice.cookie, origin: 'https://evil.example' } }, resolve))
  t.equal(foreign.statusCode, 403, 'a foreign Origin')
  t.equal(JSON.parse(await rest(foreign)).code, 'FST_SESSION_GUARD_CSRF')
  const anonymous = await new Promise<IncomingMessage>((resolve) => httpGet(`${base}/events`, { headers: { accept: 'text/event-stream', cookie: alice.cookie } }, resolve))
  t.equal(anonymous.statusCode, 401, 'no token')
  await rest(anonymous)

  const { response, first } = await stream(url, { cookie: alice.cookie, origin: base })
  t.equal(response.statusCode, 200)
  t.equal(first, 'retry: 200\ndata: hello alice\n\n')
  await app.sessions.revoke(alice.sessionId)
  t.equal(await rest(response), 'event: end\ndata: revoked\n\n', 'the server ends the stream')
  t.same(ended, ['revoked'])
})

t.test('extractToken as a plugin option: undefined falls back to Authorization; anything but a token is refused', async (t) => {
  let extracted: unknown
  const clock = new TestClock()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read, secureCookies: false, development: true, extractToken: () => extracted as string | undefined })
  app.post('/login', async (_request, reply) => await reply.issueSession({ userId: 'alice' }))
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ id: request.authSession?.id }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const { accessToken } = login.json()
  const cookie = `sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === 'sg-fp')?.value ?? ''}`
  const me = async (headers: Record<string, string> = {}): Promise<number> => (await app.inject({ url: '/me', headers: { cookie, ...headers } })).statusCode

  t.equal(await me({ authorization: `Bearer ${accessToken}` }), 200, 'undefined: Authorization as usual')
  t.equal(await me(), 401, 'undefined and no Authorization')
  extracted = accessToken
  t.equal(await me(), 200, 'the extracted token')
  t.equal(await me({ authorization: 'Bearer a.b.c' }), 200, 'the extracted token comes first')
  for (const bad of [42, '', 'a.b', `${accessToken} `, `${accessToken}.x`, 'a'.repeat(8190) + '.b.c']) {
    extracted = bad
    t.equal(await me({ authorization: `Bearer ${accessToken}` }), 401, `refused: ${String(bad).slice(0, 20)}`)
  }
  extracted = accessToken.replace(/.$/, (c: string) => (c === 'A' ? 'B' : 'A'))
  t.equal(await me(), 401, 'a forged signature')
  t.equal(await me({ accept: 'text/event-stream', origin: 'https://evil.example', authorization: `Bearer ${accessToken}` }), 403, 'an event stream from a foreign Origin, whatever the token')
})

/** One request over the socket; resolves its status and error code. */
async function call (method: string, url: string, headers: Record<string, string>): Promise<[number, string | undefined]> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, headers }, (response) => {
      rest(response).then((body) => resolve([response.statusCode ?? 0, JSON.parse(body).code]), reject)
    })
    request.once('error', reject).end()
  })
}

const extractors: Array<[string, Partial<SessionGuardOptions>, { extractToken?: TokenExtractor }]> = [
  ["the plugin's extractToken", { extractToken: fromQuery }, {}],
  ["a route's extractToken", {}, { extractToken: fromQuery }]
]
for (const [where, options, config] of extractors) {
  t.test(`${where}: a token in the URL is checked as a cookie-carried one is (CSRF header on unsafe methods, Origin on any)`, async (t) => {
    // A page of any origin can make the browser send a URL (a form's action, an <img>): the token in it rides
    // along as a cookie would, even under SameSite=Strict (the default here).
    const { base, login } = await realtime(t, options, 20, (app) => {
      app.post('/transfer', { preHandler: app.requireSession, config }, async () => ({ moved: true }))
      app.get('/balance', { preHandler: app.requireSession, config }, async () => ({ balance: 1 }))
    })
    const alice = await login('alice')
    const transfer = `${base}/transfer?access_token=${alice.accessToken}`
    const balance = `${base}/balance?access_token=${alice.accessToken}`
    const { cookie } = alice
    const csrf = { 'x-requested-with': 'fetch' }
    const evil = 'https://evil.example'
    t.same([
      await call('POST', transfer, { cookie }),
      await call('POST', transfer, { cookie, origin: base }),
      await call('POST', transfer, { cookie, ...csrf, origin: evil }),
      await call('GET', balance, { cookie, origin: evil })
    ], Array(4).fill([403, 'FST_SESSION_GUARD_CSRF']), 'refused: no CSRF header (with no Origin, with its own); a foreign Origin on POST and on GET')
    t.same([
      await call('POST', transfer, { cookie, ...csrf }),
      await call('POST', transfer, { cookie, ...csrf, origin: base }),
      await call('GET', balance, { cookie }),
      await call('GET', balance, { cookie, origin: base }),
      await call('POST', `${base}/transfer`, { cookie, authorization: `Bearer ${alice.accessToken}` })
    ], Array(5).fill([200, undefined]), 'accepted: the CSRF header with no Origin or its own; a GET with no Origin or its own; Authorization, which no page makes a browser send')
  })
}

t.test('extractToken: a non-function is refused at registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(sessionGuard, { secret: SECRET, extractToken: 'query' as never }); await app.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"extractToken"/ })
})

t.test('watchSession: needs the guard, and checks its options', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, secureCookies: false, development: true })
  const errors: Array<string | undefined> = []
  app.get('/open', (request) => {
    try {
      request.watchSession({ onEnd () {} })
    } catch (err) {
      errors.push((err as { code?: string }).code)
    }
    return 'ok'
  })
  app.post('/login', async (_request, reply) => await reply.issueSession({ userId: 'alice' }))
  app.get('/bad', { preHandler: app.requireSession }, (request) => {
    for (const options of [{ every: 0, onEnd () {} }, { onEnd: 'close' }, { onEnd () {}, evry: 10 }]) {
      try {
        request.watchSession(options as never)
      } catch (err) {
        errors.push((err as { message?: string }).message)
      }
    }
    return 'ok'
  })
  await app.inject({ url: '/open' })
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = `sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === 'sg-fp')?.value ?? ''}`
  await app.inject({ url: '/bad', headers: { cookie, authorization: `Bearer ${login.json().accessToken as string}` } })
  t.equal(errors[0], 'FST_SESSION_GUARD_NO_SESSION')
  t.match(errors.slice(1), [/"watchSession.every"/, 'Invalid option "watchSession.onEnd": must be a function (reason) => void', /watchSession/])
})

t.test('watchSession: only on a request the guard let in whose session is still its own; onEnd once; stop() leaves no listener', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, secureCookies: false, development: true })
  const codeOf = (watch: () => unknown): unknown => {
    try {
      watch()
      return 'watching'
    } catch (err) {
      return (err as { code?: string }).code
    }
  }
  app.post('/login', async (_request, reply) => await reply.issueSession({ userId: 'alice' }))
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return { code: codeOf(() => request.watchSession({ every: '1h', onEnd () {} })) }
  })
  app.get('/unguarded', async (request) => {
    // A session put on the request by the app, not by the guard: no response to end the watch with.
    request.authSession = await app.sessions.get(request.headers['x-session-id'] as string) ?? null
    return { code: codeOf(() => request.watchSession({ every: '1h', onEnd () {} })) }
  })
  app.get('/watch', { preHandler: app.requireSession }, async (request, reply) => {
    const ended: string[] = []
    const before = reply.raw.listenerCount('close')
    const watch = request.watchSession({ every: '1h', onEnd: (reason) => ended.push(reason) })
    const during = reply.raw.listenerCount('close')
    await app.sessions.revoke((request.authSession as { id: string }).id)
    const checks = await Promise.all([watch.check(), watch.check(), watch.check()])
    const other = request.watchSession({ every: '1h', onEnd () {} })
    other.stop()
    return { ended, checks, added: { byWatch: during - before, leftAfterStop: reply.raw.listenerCount('close') - before } }
  })
  const signIn = async (): Promise<{ id: string, headers: Record<string, string> }> => {
    const login = await app.inject({ method: 'POST', url: '/login' })
    const cookie = `sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === 'sg-fp')?.value ?? ''}`
    return { id: login.json().session.id, headers: { cookie, authorization: `Bearer ${login.json().accessToken as string}`, 'x-requested-with': 'fetch' } }
  }
  const alice = await signIn()
  t.same((await app.inject({ method: 'POST', url: '/logout', headers: alice.headers })).json(), { code: 'FST_SESSION_GUARD_NO_SESSION' }, 'after endSession()')
  const bob = await signIn()
  t.same((await app.inject({ url: '/unguarded', headers: { 'x-session-id': bob.id } })).json(), { code: 'FST_SESSION_GUARD_NO_SESSION' }, 'a session the guard did not set')
  const carol = await signIn()
  t.same((await app.inject({ url: '/watch', headers: carol.headers })).json(), {
    ended: ['revoked'],
    checks: [false, false, false],
    added: { byWatch: 1, leftAfterStop: 0 }
  }, 'three checks at once of a revoked session: onEnd once; a stopped watch leaves no listener on the response')
})

t.test('watchSession: a failing store ends the connection (fail closed); check() and stop()', async (t) => {
  const store = memoryStore()
  const get = store.get.bind(store)
  const { app, base, login, ended, watches } = await realtime(t, { store }, '1h')
  const alice = await login('alice')
  const url = `${base.replace('http', 'ws')}/ws`
  const first = await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  const second = await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in first) || !('socket' in second)) return t.fail('not opened')
  const [watchFirst, watchSecond] = watches as [SessionWatch, SessionWatch]
  t.equal(await watchFirst.check(), true, 'live')
  watchSecond.stop()
  store.get = async () => { throw new Error('connection lost') }
  const close = closed(first.socket)
  t.equal(await watchFirst.check(), false)
  t.same(await close, { code: 4401, reason: 'session unavailable' })
  t.equal(await watchFirst.check(), false, 'ended stays ended, onEnd once')
  t.equal(await watchSecond.check(), false, 'a stopped watch checked by hand')
  t.same(ended, ['unavailable'], 'the stopped watch never calls onEnd')
  store.get = get
  second.socket.close()
  await app.close()
})

t.test('watchSession stops when the connection closes, and when the app closes', async (t) => {
  const { app, base, login, ended, watches, sockets } = await realtime(t, {}, '1h')
  const alice = await login('alice')
  const url = `${base.replace('http', 'ws')}/ws`
  const first = await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in first)) return t.fail('not opened')
  const serverSide = sockets[0] as Socket
  const serverClosed = new Promise((resolve) => serverSide.once('close', resolve))
  first.socket.close()
  await serverClosed
  t.equal(await (watches[0] as SessionWatch).check(), false, 'stopped when its connection closed, the session still live')
  const second = await open(url, { protocols: [PROTOCOL, alice.accessToken], headers: { cookie: alice.cookie } })
  if (!('socket' in second)) return t.fail('not opened')
  t.equal(watches.length, 2)
  const close = closed(second.socket)
  await app.close()
  await close
  await app.sessions.revoke(alice.sessionId)
  for (const watch of watches) t.equal(await watch.check(), false, 'stopped')
  t.same(ended, [], 'neither watch called onEnd after it was stopped')
})

t.test('watchSession on a connection that closed before the handler ran starts no timer', async (t) => {
  // The client hangs up while the route is still busy (a slow store, an app preHandler): its 'close' has
  // already fired when the handler asks for a watch, which must not poll the store until the session ends.
  let watch: SessionWatch | undefined
  let handled!: () => void
  const done = new Promise<void>((resolve) => { handled = resolve })
  const { base, login, ended } = await realtime(t, {}, 20, (app) => {
    app.get('/slow', {
      preHandler: [app.requireSession, async (request) => {
        if (!request.raw.socket.destroyed) await new Promise((resolve) => request.raw.socket.once('close', resolve))
      }]
    }, async (request) => {
      watch = request.watchSession({ every: 20, onEnd: (reason) => ended.push(reason) })
      handled()
      return 'late'
    })
  })
  const alice = await login('alice')
  const client = httpGet(`${base}/slow`, { headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } })
  client.once('error', () => {})
  setTimeout(() => client.destroy(), 50)
  await done
  t.equal(await (watch as SessionWatch).check(), false, 'stopped from the start')
  t.same(ended, [], 'and never ends anything')
})

t.test('watchSession stops when its response ends: none outlives the requests of a keep-alive connection', async (t) => {
  // A poll that watches and answers, and a finite stream that hijacks, writes one event and ends, 20 times each
  // over one connection: each watch must stop with its own response, not with the connection's socket.
  const store = memoryStore()
  const get = store.get.bind(store)
  let reads = 0
  store.get = async (id, now) => { reads++; return await get(id, now) }
  const watched: SessionWatch[] = []
  const ended: string[] = []
  const connections = new Set<Socket>()
  const closeListeners: number[] = []
  const watch = (request: FastifyRequest): void => {
    connections.add(request.raw.socket)
    closeListeners.push(request.raw.socket.listenerCount('close'))
    watched.push(request.watchSession({ every: '1h', onEnd: (reason) => ended.push(reason) }))
  }
  const { base, login, app } = await realtime(t, { store }, '1h', (app) => {
    app.get('/poll', { preHandler: app.requireSession }, async (request) => {
      watch(request)
      return { polled: true }
    })
    app.get('/once', { preHandler: app.requireSession }, (request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      reply.raw.write('data: once\n\n')
      watch(request)
      reply.raw.end()
    })
  })
  const alice = await login('alice')
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const headers = { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie }
  for (let i = 0; i < 20; i++) {
    for (const [path, accept] of [['/poll', 'application/json'], ['/once', 'text/event-stream']] as const) {
      const response = await new Promise<IncomingMessage>((resolve, reject) => httpGet(`${base}${path}`, { agent, headers: { ...headers, accept } }, resolve).once('error', reject))
      t.equal(response.statusCode, 200)
      await rest(response)
    }
  }
  await settle()
  t.equal(connections.size, 1, 'every request on one keep-alive connection')
  t.same(new Set(closeListeners), new Set([closeListeners[0]]), 'no close listener left on the socket by an earlier watch')
  reads = 0
  await app.sessions.revoke(alice.sessionId)
  const live = (await Promise.all(watched.map(async (w) => await w.check()))).filter(Boolean).length
  t.same({ watches: watched.length, live, reads, ended }, { watches: 40, live: 0, reads: 0, ended: [] }, 'each stopped with its response: no store read, no onEnd on a reply that had ended')
})

t.test('watchSession asked for after the response was sent starts stopped', async (t) => {
  let watch: SessionWatch | undefined
  let handled!: () => void
  const done = new Promise<void>((resolve) => { handled = resolve })
  const { base, login } = await realtime(t, {}, 20, (app) => {
    app.get('/sent', { preHandler: app.requireSession }, async (request, reply) => {
      reply.send('sent')
      // Its 'finish' and 'close' have fired, on a connection that stays open.
      await new Promise((resolve) => reply.raw.once('close', resolve))
      watch = request.watchSession({ every: 20, onEnd () {} })
      handled()
      return reply
    })
  })
  const alice = await login('alice')
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const response = await new Promise<IncomingMessage>((resolve) => httpGet(`${base}/sent`, { agent, headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.cookie } }, resolve))
  const connection = response.socket
  t.equal(await rest(response), 'sent')
  await done
  t.equal(connection.destroyed, false, 'the connection is still open')
  t.equal(await (watch as SessionWatch).check(), false, 'stopped from the start')
})

t.test('watchSession: an onEnd that throws is logged, never an unhandled rejection', async (t) => {
  const lines: Array<{ msg?: string, err?: { message?: string } }> = []
  const clock = new TestClock()
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read, secureCookies: false, development: true })
  app.post('/login', async (_request, reply) => await reply.issueSession({ userId: 'alice' }))
  let logged: () => void = () => {}
  const done = new Promise<void>((resolve) => { logged = resolve })
  app.get('/watch', { preHandler: app.requireSession }, (request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    reply.raw.write('data: watching\n\n')
    request.watchSession({ every: 5, onEnd () { setImmediate(logged); reply.raw.end(); throw new Error('the app failed') } })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = `sg-fp=${(login.cookies as Array<{ name: string, value: string }>).find((c) => c.name === 'sg-fp')?.value ?? ''}`
  const { first } = await stream(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/watch`, { cookie, authorization: `Bearer ${login.json().accessToken as string}` })
  t.equal(first, 'data: watching\n\n')
  await app.sessions.revoke(login.json().session.id as string)
  await done
  t.match(lines, [{ msg: 'watchSession: onEnd threw', err: { message: 'the app failed' } }])
})
