import t from 'tap'
import type { SessionRecord } from '../lib/session.js'
import { AccessTokens } from '../lib/tokens/access-tokens.js'
import { parseTokenOptions, type Signer, TokenKeys } from '../lib/tokens/jwt.js'
import { build, EPOCH, MINUTE, SECRET } from './helper.js'

/**
 * The verified-token cache in AccessTokens skips the signature check for a
 * token seen before. These tests hold it to what it must never do: accept a
 * token past its expiry, let a revoked session through, or hand one caller's
 * changes to the next.
 */

const TTL_MS = 15 * MINUTE

async function counted (): Promise<{ jwt: Signer, calls: () => number }> {
  const keys = new TokenKeys(parseTokenOptions({ secret: SECRET }))
  let calls = 0
  const jwt: Signer = { sign: (payload, typ) => keys.sign(payload, typ), verify: (token) => { calls++; return keys.verify(token) } }
  return { jwt, calls: () => calls }
}

function session (id: string, claims?: Record<string, unknown>): SessionRecord {
  return {
    id,
    userId: 'user-1',
    fingerprintHash: 'f'.repeat(43),
    createdAt: EPOCH,
    lastSeenAt: EPOCH,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 60 * MINUTE,
    remembered: false,
    ...(claims === undefined ? {} : { claims })
  }
}

t.test('a token seen before is not verified again, and each caller gets its own copy', async (t) => {
  const { jwt, calls } = await counted()
  const tokens = new AccessTokens(jwt, TTL_MS, 0)
  const token = tokens.sign(session('s1', { role: 'member' }), EPOCH)
  const first = tokens.verify(token, EPOCH)
  const second = tokens.verify(token, EPOCH + MINUTE)
  t.equal(calls(), 1)
  t.same(second, first)
  if (typeof first === 'string' || typeof second === 'string') throw new Error('refused')
  first.role = 'admin'
  const third = tokens.verify(token, EPOCH + MINUTE)
  t.not(second, first, 'a new object per call')
  t.equal((third as Record<string, unknown>).role, 'member', 'a change made by one caller never reaches the next')
})

t.test('a remembered token is refused once it expires, and forgotten', async (t) => {
  const { jwt, calls } = await counted()
  const tokens = new AccessTokens(jwt, TTL_MS, 0)
  const token = tokens.sign(session('s1'), EPOCH)
  t.type(tokens.verify(token, EPOCH), 'object')
  t.equal(tokens.verify(token, EPOCH + TTL_MS), 'expired_token')
  t.equal(calls(), 1, 'refused from the cache, by the clock')
  t.equal(tokens.verify(token, EPOCH + TTL_MS), 'expired_token')
  t.equal(calls(), 2, 'then forgotten: verified (and refused) again')
})

t.test('a token whose claims hold objects is never remembered', async (t) => {
  const { jwt, calls } = await counted()
  const tokens = new AccessTokens(jwt, TTL_MS, 0)
  const token = tokens.sign(session('s1', { roles: ['member'] }), EPOCH)
  t.type(tokens.verify(token, EPOCH), 'object')
  t.type(tokens.verify(token, EPOCH), 'object')
  t.equal(calls(), 2)
})

t.test('null claims are flat: such a token is remembered', async (t) => {
  const { jwt, calls } = await counted()
  const tokens = new AccessTokens(jwt, TTL_MS, 0)
  const token = tokens.sign(session('s1', { team: null }), EPOCH)
  tokens.verify(token, EPOCH)
  t.same(tokens.verify(token, EPOCH), { team: null, sub: 'user-1', sid: 's1', fph: 'f'.repeat(43), iat: EPOCH / 1000, exp: EPOCH / 1000 + TTL_MS / 1000 })
  t.equal(calls(), 1)
})

t.test('the cache is bounded: the least recently used token makes room', async (t) => {
  const { jwt, calls } = await counted()
  const tokens = new AccessTokens(jwt, TTL_MS, 0)
  const first = tokens.sign(session('s0'), EPOCH)
  tokens.verify(first, EPOCH)
  for (let i = 1; i <= 10_000; i++) tokens.verify(tokens.sign(session(`s${i}`), EPOCH), EPOCH)
  t.equal(calls(), 10_001)
  tokens.verify(first, EPOCH)
  t.equal(calls(), 10_002, 'the first token was pushed out and is verified again')
})

t.test('through the guard: a revoked session is refused although its token is remembered', async (t) => {
  const { app, login, me } = await build(t)
  const credentials = await login('user-1')
  t.equal((await me(credentials)).statusCode, 200)
  t.equal((await me(credentials)).statusCode, 200)
  t.ok(await app.sessions.revoke(credentials.sessionId))
  t.equal((await me(credentials)).statusCode, 401)
})

t.test('through the guard: a remembered token is refused after its expiry', async (t) => {
  const { clock, login, me } = await build(t)
  const credentials = await login('user-1')
  t.equal((await me(credentials)).statusCode, 200)
  clock.advance(TTL_MS)
  t.equal((await me(credentials)).statusCode, 401)
})
