import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { createTokenSource, type TokenExtractor } from '../lib/http/access-token-source.js'
import type { CsrfPolicy } from '../lib/http/csrf.js'

/**
 * The token source's bounds, request by request: what an extractor returns and
 * what the cookie holds must be one JWS compact token of at most 8 KiB, nothing
 * around it. Over HTTP each refusal is the same 401; here the reason is seen.
 */
const CSRF: CsrfPolicy = { header: 'x-requested-with', allowedOrigins: new Set(), crossSite: false }
const MAX = 8192
/** A token of `length` characters in the JWS compact shape. */
const shaped = (length: number): string => `${'a'.repeat(length - 4)}.b.c`

function request (headers: Record<string, string> = {}): FastifyRequest {
  return { method: 'GET', headers, protocol: 'https', host: 'api.example', log: { debug () {} } } as unknown as FastifyRequest
}

t.test('an extractor\'s token: a string in the JWS compact shape, whole, of at most 8 KiB', async (t) => {
  let returned: unknown
  const source = createTokenSource({ transport: 'header', cookie: undefined }, undefined, CSRF, (() => returned) as TokenExtractor, () => false)
  const cases: Array<[string, unknown, string]> = [
    ['a token', 'x.y.z', 'token'],
    ['8 KiB exactly', shaped(MAX), 'token'],
    ['one character more', shaped(MAX + 1), 'malformed_token'],
    ['text before it', 'Bearer x.y.z', 'malformed_token'],
    ['text after it', 'x.y.z extra', 'malformed_token'],
    ['not a string, though it prints as a token', ['x.y.z'], 'malformed_token']
  ]
  for (const [name, value, expected] of cases) {
    returned = value
    const answer = source(request())
    t.equal('token' in answer ? 'token' : answer.rejected, expected, name)
  }
})

t.test('the access token cookie: the JWS compact shape, whole, of at most 8 KiB', async (t) => {
  const source = createTokenSource({ transport: 'cookie', cookie: undefined }, 'sg-at', CSRF, undefined, () => false)
  const cases: Array<[string, string, string]> = [
    ['a token', 'x.y.z', 'token'],
    ['8 KiB exactly', shaped(MAX), 'token'],
    ['one character more', shaped(MAX + 1), 'malformed_token'],
    ['text before it', '!x.y.z', 'malformed_token'],
    ['text after it', 'x.y.z~', 'malformed_token']
  ]
  for (const [name, value, expected] of cases) {
    const answer = source(request({ cookie: `sg-at=${value}` }))
    t.equal('token' in answer ? 'token' : answer.rejected, expected, name)
  }
})
