import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import sessionGuard, { type SessionEvent, type SessionGuardOptions, sessionLimitResponseSchema } from '../lib/index.js'
import { settle, TestClock, SECRET } from './helper.js'
import { FIREFOX, PLACES } from './anomaly-fixtures.js'

/**
 * An app with the plugin over a real socket, for the anomaly rules and the
 * step-up: the client's address comes from `X-Forwarded-For` (`trustProxy`),
 * its device from `User-Agent`, and its place from `locate`.
 */

export const PARIS = { ip: '203.0.113.1', userAgent: FIREFOX }
export const BERLIN = { ip: '192.0.2.1', userAgent: FIREFOX }

export interface Client { ip: string, userAgent: string, headers?: Record<string, string> }

/** A client `km` kilometres due north of Paris (1 degree of latitude is 111.195 km on the plugin's sphere). */
export function north (km: number, userAgent = FIREFOX): Client {
  return { ip: `10.${Math.floor(km / 256)}.${km % 256}.1`, userAgent }
}

/** An address the resolver places in a country, without coordinates. */
export const COUNTRY_ONLY = { ip: '192.0.2.78', userAgent: FIREFOX }

/** What the tests' `resolveLocation` answers: the fixtures, and the places north of Paris. */
export function locate (ip: string) {
  if (ip === COUNTRY_ONLY.ip) return { country: 'NL' }
  const hop = /^10\.(\d+)\.(\d+)\.1$/.exec(ip)
  if (hop === null) return PLACES[ip]
  const km = Number(hop[1]) * 256 + Number(hop[2])
  return { city: `${km} km north of Paris`, latitude: 48.8566 + km / 111.19493, longitude: 2.3522 }
}

/** What a client holds after a login: its access token, fingerprint and refresh cookies. */
export interface Held { accessToken: string, sessionId: string, fingerprint: string, refreshToken: string }

export interface Answer { status: number, body: Record<string, any>, cookies: Record<string, string>, headers: Headers }

export async function serve (t: Test, options: Partial<SessionGuardOptions> = {}, routes: (app: FastifyInstance) => void = () => {}) {
  const clock = new TestClock()
  const events: SessionEvent[] = []
  const app = Fastify({ trustProxy: true })
  t.teardown(() => app.close())
  await app.register(sessionGuard, {
    secret: SECRET,
    clock: clock.read,
    resolveLocation: locate,
    privacy: { ipMode: 'full' },
    routes: { prefix: '/sessions' },
    onEvent: (event) => events.push(event),
    ...options
  })
  app.post<{ Body: { userId: string } }>('/login', { schema: { response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
    const { accessToken, session } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken, sessionId: session.id }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ flags: request.authSession?.flags ?? [] }))
  app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  async function send (client: Client, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
    const response = await fetch(base + path, {
      method,
      headers: {
        'x-forwarded-for': client.ip,
        'user-agent': client.userAgent,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...client.headers,
        ...headers
      },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    const cookies: Record<string, string> = {}
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';')
      const at = pair.indexOf('=')
      cookies[pair.slice(0, at)] = pair.slice(at + 1)
    }
    const text = await response.text()
    return { status: response.status, body: text === '' ? {} : JSON.parse(text), cookies, headers: response.headers }
  }

  function held (answer: Answer, fingerprint = answer.cookies['__Host-sg-fp'] as string): Held {
    return { accessToken: answer.body.accessToken, sessionId: answer.body.sessionId, fingerprint, refreshToken: answer.cookies['__Secure-sg-rt'] as string }
  }

  /** Logs alice (or `userId`) in from `client`: the answer, and the session's flags when it was created. */
  async function login (client: Client, userId = 'alice') {
    const answer = await send(client, 'POST', '/login', {}, { userId })
    const session = answer.status === 200 ? await app.sessions.get(answer.body.sessionId) : undefined
    return { answer, held: answer.status === 200 ? held(answer) : undefined, flags: session?.flags }
  }

  async function me (client: Client, credentials: Held): Promise<Answer> {
    return await send(client, 'GET', '/me', { authorization: `Bearer ${credentials.accessToken}`, cookie: `__Host-sg-fp=${credentials.fingerprint}` })
  }

  /** A cookie-carried refresh, as the app's own script sends it; `credentials` take the new tokens. */
  async function refresh (client: Client, credentials: Held): Promise<Answer> {
    const answer = await send(client, 'POST', '/refresh', {
      'x-requested-with': 'fetch',
      cookie: `__Secure-sg-rt=${credentials.refreshToken}; __Host-sg-fp=${credentials.fingerprint}`
    })
    if (answer.status === 200) {
      credentials.accessToken = answer.body.accessToken
      credentials.refreshToken = answer.cookies['__Secure-sg-rt'] as string
    }
    return answer
  }

  async function anomalies (): Promise<string[]> {
    await settle()
    return events.filter((e): e is SessionEvent<'anomaly.detected'> => e.type === 'anomaly.detected').map((e) => `${e.rule}:${e.decision}:${e.at}`)
  }

  return { app, clock, events, send, held, login, me, refresh, anomalies }
}
