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
function mac (body: string): string {
  const key = Buffer.from(hkdfSync('sha256', SECRET, '', 'fastify-session-guard refresh token', 32))
  return createHmac('sha256', key).update(body).digest('base64url')
}

t.test('a token is <session id>.<256 random bits>.<MAC>, and the store keeps its SHA-256', async (t) => {
  const tokens = new RefreshTokens(SECRET)
  const { token, hash } = tokens.issue('session-1')
  const [id, random, tag] = token.split('.')
  t.equal(id, 'session-1')
  t.match(random, /^[A-Za-z0-9_-]{43}$/)
  t.equal(tag, mac(`${id}.${random}`))
  t.equal(hash, sha256(token))
  t.same(tokens.open(token), { sessionId: 'session-1', hash })
  t.not(tokens.issue('session-1').token, token)
})

t.test('open refuses anything without the MAC of its body, and ill-formed tokens even with one', async (t) => {
  const tokens = new RefreshTokens(SECRET)
  const { token } = tokens.issue('session-1')
  const cases: Array<[string, string]> = [
    ['another key', new RefreshTokens(`${SECRET}-other`).issue('session-1').token],
    ['another session id under the MAC', token.replace('session-1', 'session-2')],
    ['the MAC cut short', token.slice(0, -1)],
    ['no dot', 'session-1'],
    ['an empty session id, MACed', `.abc.${mac('.abc')}`],
    ['one dot: the MAC of the session id alone', `session-1.${mac('session-1')}`],
    ['empty', '']
  ]
  for (const [name, candidate] of cases) t.equal(tokens.open(candidate), undefined, name)
})
