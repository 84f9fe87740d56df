import { createHmac, hkdfSync } from 'node:crypto'
import t from 'tap'
import { sha256 } from '../lib/crypto.js'
import { RefreshTokens } from '../lib/tokens/refresh-tokens.js'
import { SECRET } from './helper.js'

/**
 * Refresh tokens on their own. Over HTTP a token with a broken MAC is refused
 * whatever the reason; here the MAC key derivation (tokens must outlive an
 * upgrade) and the refusal of well-MACed but ill-formed tokens are pinned
 * (found by mutation testing).
 */

/** The MAC the documented derivation gives: HMAC-SHA-256 under HKDF-SHA-256 of the secret, a label of its own. */
function mac (body: string, secret: string = SECRET): string {
  const key = Buffer.from(hkdfSync('sha256', secret, '', 'fastify-session-guard refresh token', 32))
  return createHmac('sha256', key).update(body).digest('base64url')
}

const OTHER = `${SECRET}-other`
const ring = (...keys: Array<[string, string]>): RefreshTokens => new RefreshTokens(keys.map(([kid, material]) => ({ kid, material })))

t.test('a token is <session id>.<256 random bits>.<MAC key version>.<MAC>, and the store keeps its SHA-256', async (t) => {
  const tokens = ring(['default', SECRET])
  const { token, hash } = tokens.issue('session-1')
  const [id, random, version, tag] = token.split('.')
  t.equal(id, 'session-1')
  t.match(random, /^[A-Za-z0-9_-]{43}$/)
  t.equal(version, 'default')
  t.equal(tag, mac(`${id}.${random}.${version}`))
  t.equal(hash, sha256(token))
  t.same(tokens.open(token), { sessionId: 'session-1', hash })
  t.not(tokens.issue('session-1').token, token)
})

t.test('open refuses anything without the MAC of its body, and ill-formed tokens even with one', async (t) => {
  const tokens = ring(['default', SECRET])
  const { token } = tokens.issue('session-1')
  const cases: Array<[string, string]> = [
    ['another key', ring(['default', OTHER]).issue('session-1').token],
    ['another key under a version this ring does not hold', ring(['v2', OTHER]).issue('session-1').token],
    ['another version named, its MAC under this key', `session-1.abc.v2.${mac('session-1.abc.v2')}`],
    ['five parts, MACed', `session-1.abc.default.x.${mac('session-1.abc.default.x')}`],
    ['another session id under the MAC', token.replace('session-1', 'session-2')],
    ['the MAC cut short', token.slice(0, -1)],
    ['no dot', 'session-1'],
    ['an empty session id, MACed', `.abc.${mac('.abc')}`],
    ['one dot: the MAC of the session id alone', `session-1.${mac('session-1')}`],
    ['empty', '']
  ]
  for (const [name, candidate] of cases) t.equal(tokens.open(candidate), undefined, name)
})

t.test('a token issued before versions (three parts) opens under version default, and only there', async (t) => {
  const legacy = `session-1.${'a'.repeat(43)}.${mac(`session-1.${'a'.repeat(43)}`)}`
  t.same(ring(['default', SECRET]).open(legacy), { sessionId: 'session-1', hash: sha256(legacy) })
  t.same(ring(['v2', OTHER], ['default', SECRET]).open(legacy)?.sessionId, 'session-1', 'while default is an older version')
  t.equal(ring(['v2', SECRET]).open(legacy), undefined, 'the same secret under another version does not open it')
})

t.test('the first version MACs new tokens, and every version held opens its own', async (t) => {
  const before = ring(['v1', SECRET])
  const during = ring(['v2', OTHER], ['v1', SECRET])
  const after = ring(['v2', OTHER])
  const old = before.issue('session-1').token
  const fresh = during.issue('session-2').token
  t.equal(fresh.split('.')[2], 'v2')
  t.equal(fresh.split('.')[3], mac(fresh.slice(0, fresh.lastIndexOf('.')), OTHER), 'MACed under the current version')
  t.equal(during.open(old)?.sessionId, 'session-1', 'an older version still opens its tokens')
  t.equal(during.open(fresh)?.sessionId, 'session-2')
  t.equal(after.open(fresh)?.sessionId, 'session-2')
  t.equal(after.open(old), undefined, 'a version removed opens nothing')
  t.equal(before.open(fresh), undefined, 'a version not yet held opens nothing')
})
