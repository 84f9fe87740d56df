import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { memoryStore, type SessionGuardOptions, type SessionRecord, type SessionStore, type StoreStats } from '../../lib/index.js'
import { build, type Credentials, type Harness } from '../helper.js'

/**
 * The shared ground of the attack suite (`test/security/*.test.ts`).
 *
 * Every attack builds its app through `setup()`, so the whole suite can be
 * pointed at another store by changing `storeFactory` (one line), and at an
 * app that registers more routes by passing them to `setup()`.
 */

/** The store the attacks run against. */
export const storeFactory: () => SessionStore = () => memoryStore()

/**
 * Routes that take a session id from the client, as `[method, url template]`
 * with `:id` where the id goes. The plugin registers none of its own today; the
 * device-management routes go here when they exist, and every "another user's
 * session id" attack runs against each of them.
 */
export const sessionIdRoutes: ReadonlyArray<readonly [string, string]> = [['DELETE', '/sessions/:id']]

/** The app of `test/helper.ts` on `storeFactory()`, unless the test gives its own store. */
export async function setup (
  t: Test,
  options: Partial<SessionGuardOptions> = {},
  routes?: (app: FastifyInstance) => void
): Promise<Harness> {
  return await build(t, { store: storeFactory(), ...options }, routes)
}

/** The one answer every refused request gets, whatever failed. */
export const UNAUTHORIZED = { statusCode: 401, code: 'FST_SESSION_GUARD_UNAUTHORIZED', error: 'Unauthorized', message: 'Authentication required' }
/** RFC 6750 challenge of the guard. */
export const CHALLENGE = 'Bearer realm="session", error="invalid_token"'

/** Asserts the guard's refusal: 401, the generic body and the Bearer challenge. */
export function assertGuardRefused (t: Test, response: LightMyRequestResponse, name: string): void {
  t.equal(response.statusCode, 401, `${name}: 401`)
  t.same(safeJson(response), UNAUTHORIZED, `${name}: generic body`)
  t.equal(response.headers['www-authenticate'], CHALLENGE, `${name}: Bearer challenge`)
}

/** Asserts the refresh route's refusal: 401 and the generic body (no Bearer challenge: it is not a bearer resource). */
export function assertRefreshRefused (t: Test, response: LightMyRequestResponse, name: string): void {
  t.equal(response.statusCode, 401, `${name}: 401`)
  t.same(safeJson(response), UNAUTHORIZED, `${name}: generic body`)
  t.equal(response.headers['www-authenticate'], undefined, `${name}: no challenge`)
}

/** The JSON body, or the raw text when it is not JSON (so the assertion shows it). */
export function safeJson (response: LightMyRequestResponse): unknown {
  try {
    return response.json()
  } catch {
    return response.body
  }
}

/** What the store holds about some sessions, and its counters: compare two to prove nothing changed. */
export interface StoreSnapshot {
  sessions: Record<string, SessionRecord | undefined>
  stats: StoreStats
  users: Record<string, string[]>
}

export async function snapshot (app: FastifyInstance, sessions: Credentials[], userIds: string[] = []): Promise<StoreSnapshot> {
  const records: Record<string, SessionRecord | undefined> = {}
  for (const { sessionId } of sessions) records[sessionId] = await app.sessions.get(sessionId)
  const users: Record<string, string[]> = {}
  for (const userId of userIds) users[userId] = (await app.sessions.list(userId)).map((session) => session.id)
  return { sessions: records, stats: await app.sessions.stats(), users }
}

/**
 * Asserts that no session was created, extended, rotated or revoked since
 * `before`: same records (lastSeenAt, idleExpiresAt, refresh state), same
 * per-user lists and the same counters.
 */
export async function assertUntouched (t: Test, app: FastifyInstance, before: StoreSnapshot, name: string, sessions: Credentials[], userIds: string[] = []): Promise<void> {
  const after = await snapshot(app, sessions, userIds)
  t.same(after.sessions, before.sessions, `${name}: no session extended, rotated or revoked`)
  t.same(after.users, before.users, `${name}: per-user lists unchanged`)
  t.same(after.stats, before.stats, `${name}: no session created or removed`)
}

/** A response must never show a stack frame or a file path. */
export function assertNoLeak (t: Test, response: LightMyRequestResponse, name: string): void {
  t.notMatch(response.body, /\bat [^\s]+ \(|\bat [^\s]+:\d+:\d+|\/[\w.-]+\/[\w.-]+\.(?:js|ts|cjs|mjs)\b|node_modules|node:internal/, `${name}: no stack trace or path`)
}

/** POST /refresh the way the app's own script does, with cookie transport. */
export async function refreshByCookie (h: Harness, refreshToken: string, fingerprint: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await h.app.inject({
    method: 'POST',
    url: '/refresh',
    headers: { cookie: `__Secure-sg-rt=${refreshToken}; ${fingerprint}`, 'x-requested-with': 'fetch', ...headers }
  })
}

/** The credentials a successful refresh hands back (cookie transport). */
export function refreshed (previous: Credentials, response: LightMyRequestResponse): Credentials {
  const cookie = (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === '__Secure-sg-rt')
  return { ...previous, accessToken: response.json().accessToken, refreshToken: cookie?.value ?? response.json().refreshToken, response }
}

/** The decoded payload of a JWT (no verification). */
export function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString())
}

/** A bearer request to GET /me with any token and cookie header. */
export async function callMe (app: FastifyInstance, token: string, cookie: string | undefined, extra: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...extra }
  if (cookie !== undefined) headers.cookie = cookie
  return await app.inject({ method: 'GET', url: '/me', headers })
}
