import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { sha256 } from '../lib/crypto.js'
import { createFingerprint, isFingerprintRejection, readFingerprintHash } from '../lib/http/fingerprint.js'

/**
 * The fingerprint cookie read on its own, with the precise reason for each
 * refusal. Over HTTP every refusal is the same 401 (test/security/cookies.test.ts),
 * so a cookie that is malformed but refused later, as a mismatch, would pass
 * there: here the shape check itself is pinned (found by mutation testing).
 */

const NAME = '__Host-sg-fp'

function request (cookie: string | undefined): FastifyRequest {
  const cookies: Record<string, string> = {}
  for (const part of cookie?.split(';') ?? []) {
    const at = part.indexOf('=')
    const name = part.slice(0, at).trim()
    if (at > 0 && cookies[name] === undefined) cookies[name] = part.slice(at + 1).trim()
  }
  return { cookies, headers: cookie === undefined ? {} : { cookie } } as unknown as FastifyRequest
}

t.test('a fingerprint is 256 random bits as base64url, with its SHA-256', async (t) => {
  const { value, hash } = createFingerprint()
  t.match(value, /^[A-Za-z0-9_-]{43}$/)
  t.equal(hash, sha256(value))
  t.not(createFingerprint().value, value)
})

t.test('the hash of the one well-formed fingerprint cookie, or why not', async (t) => {
  const { value, hash } = createFingerprint()
  t.equal(readFingerprintHash(request(`theme=dark; ${NAME}=${value}`), NAME), hash)
  t.equal(readFingerprintHash(request(undefined), NAME), 'missing_fingerprint')
  t.equal(readFingerprintHash(request('theme=dark'), NAME), 'missing_fingerprint')
  const malformed: Array<[string, string]> = [
    ['one character short', value.slice(1)],
    ['one character long', `${value}A`],
    ['a character before', `.${value}`],
    ['a character after', `${value}.`],
    ['standard base64', `${'+'.repeat(42)}/`],
    ['empty', '']
  ]
  for (const [name, cookie] of malformed) {
    t.equal(readFingerprintHash(request(`${NAME}=${cookie}`), NAME), 'malformed_fingerprint', name)
  }
  t.equal(readFingerprintHash(request(`${NAME}=${value}; ${NAME}=${value}`), NAME), 'duplicate_fingerprint')
  t.equal(readFingerprintHash(request(`${NAME}=${value}; __HOST-SG-FP=${value}`), NAME), 'duplicate_fingerprint', 'a second name in another case')
})

t.test('the reasons are told apart from a hash', async (t) => {
  for (const reason of ['missing_fingerprint', 'malformed_fingerprint', 'duplicate_fingerprint']) {
    t.equal(isFingerprintRejection(reason), true, reason)
  }
  t.equal(isFingerprintRejection(createFingerprint().hash), false)
  t.equal(isFingerprintRejection(''), false)
})
