import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { TestClock } from '../lib/testing/clock.js'

// The store kit's clock: tests and the store suites share one.
export { EPOCH, TestClock } from '../lib/testing/clock.js'

export const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
export const MINUTE = 60_000

/** Event listeners run on a later turn of the event loop: let them. */
export async function settle (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

export interface Harness {
  app: FastifyInstance
  clock: TestClock
  login: (userId: string, body?: Record<string, unknown>) => Promise<Credentials>
  me: (credentials: Credentials, headers?: Record<string, string>) => Promise<LightMyRequestResponse>
}

export interface Credentials {
  accessToken: string
  sessionId: string
  /** `name=value` of the fingerprint cookie. */
  fingerprint: string
  /** The refresh token (from its cookie or the body). */
  refreshToken: string
  response: LightMyRequestResponse
}

/**
 * An app with the plugin, a login route for any user id (`POST /login`,
 * body `{ userId, remember?, claims? }`), `GET /me`, `POST /logout` and
 * `POST /refresh`, plus whatever `routes` adds, and a clock the test moves.
 * Closed when the test ends.
 */
export async function build (
  t: Test,
  options: Partial<SessionGuardOptions> = {},
  routes: (app: FastifyInstance) => void = () => {}
): Promise<Harness> {
  const clock = new TestClock()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read, ...options })
  app.post<{ Body: { userId: string, remember?: boolean, claims?: Record<string, unknown> } }>('/login', async (request, reply) => {
    const { accessToken, refreshToken, session } = await reply.issueSession(request.body)
    return { accessToken, refreshToken, sessionId: session.id }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ user: request.user, session: request.authSession }))
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return reply.code(204).send()
  })
  app.post('/refresh', async (request, reply) => {
    const { accessToken, refreshToken } = await reply.refreshSession()
    return { accessToken, refreshToken }
  })
  routes(app)
  await app.ready()

  const fingerprintName = options.fingerprintCookie ?? (options.secureCookies === false ? 'sg-fp' : options.cookies?.domain === undefined ? '__Host-sg-fp' : '__Secure-sg-fp')
  const refreshName = options.refresh?.cookie ?? (options.secureCookies === false ? 'sg-rt' : '__Secure-sg-rt')

  async function login (userId: string, body: Record<string, unknown> = {}): Promise<Credentials> {
    const response = await app.inject({ method: 'POST', url: '/login', payload: { userId, ...body } })
    if (response.statusCode !== 200) throw Object.assign(new Error(`login failed: ${response.statusCode}`), { response })
    const json = response.json()
    const cookies = response.cookies as Array<{ name: string, value: string }>
    const fingerprint = cookies.find((cookie) => cookie.name === fingerprintName)
    const refresh = cookies.find((cookie) => cookie.name === refreshName)
    return {
      accessToken: json.accessToken,
      sessionId: json.sessionId,
      fingerprint: `${fingerprintName}=${fingerprint?.value ?? ''}`,
      refreshToken: json.refreshToken ?? refresh?.value ?? '',
      response
    }
  }

  async function me (credentials: Credentials, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return await app.inject({
      method: 'GET',
      url: '/me',
      headers: { authorization: `Bearer ${credentials.accessToken}`, cookie: credentials.fingerprint, ...headers }
    })
  }

  return { app, clock, login, me }
}

/** The error with which registering the plugin with `options` fails, or `undefined` when it starts. */
export async function registrationError (options: unknown): Promise<{ code?: string, message?: string } | undefined> {
  const app = Fastify()
  try {
    await app.register(sessionGuard, options as SessionGuardOptions)
    await app.ready()
    return undefined
  } catch (err) {
    return err as { code?: string, message?: string }
  } finally {
    await app.close()
  }
}

/** A Set-Cookie header's name and its attributes by lower-cased name (`true` for a flag), so a test asserts values exactly. */
export function parseSetCookie (header: string): { name: string, attributes: Record<string, string | true> } {
  const [pair, ...rest] = header.split(';')
  const attributes: Record<string, string | true> = {}
  for (const part of rest) {
    const at = part.indexOf('=')
    const key = (at === -1 ? part : part.slice(0, at)).trim().toLowerCase()
    if (key in attributes) throw new Error(`attribute ${key} set twice in ${header}`)
    attributes[key] = at === -1 ? true : part.slice(at + 1).trim()
  }
  return { name: (pair as string).slice(0, (pair as string).indexOf('=')), attributes }
}

/** Every Set-Cookie header of a response, parsed. */
export function setCookies (response: { headers: Record<string, unknown> }): Array<ReturnType<typeof parseSetCookie>> {
  const header = response.headers['set-cookie']
  if (header === undefined) return []
  return (Array.isArray(header) ? header : [header]).map((value) => parseSetCookie(value as string))
}
