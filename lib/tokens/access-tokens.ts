import { LRUCache } from 'lru-cache'
import { InvalidClaimsError } from '../errors.js'
import type { SessionRecord } from '../session.js'
import { boundKey } from '../http/dpop.js'
import { TimedJwt, type Signer } from './jwt.js'

/** Claims the plugin puts in every access token; the app's own claims may not use these names. */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['sub', 'sid', 'fph', 'cnf', 'iat', 'exp', 'nbf', 'jti', 'iss', 'aud'])

/** U+0000, or a surrogate without its pair. */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * Whether every store keeps `text` as it is. PostgreSQL refuses U+0000
 * (`text`, `jsonb`) and a lone surrogate in `jsonb`; encoded as UTF-8 (a
 * `text` column, a Redis key) a lone surrogate becomes U+FFFD, so two user ids
 * could become one.
 */
export function isStorable (text: string): boolean {
  return !UNSTORABLE.test(text)
}

/**
 * The app's claims for a session, checked once for every store: a plain
 * object without a reserved name (else a programming error, `TypeError`), and
 * no name or string value, at any depth, that a store cannot keep (else bad
 * data, `InvalidClaimsError`, 400, before the login counts or writes anything,
 * rather than a store failure, 503, after). Returns a frozen copy.
 */
export function checkClaims (claims: Record<string, unknown>): Readonly<Record<string, unknown>> {
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new TypeError('claims must be a plain object')
  }
  for (const name of Object.keys(claims)) {
    if (RESERVED_CLAIMS.has(name)) throw new TypeError(`claims may not set the reserved claim "${name}"`)
  }
  // Walks exactly what will be serialised (after any toJSON), at every depth.
  JSON.stringify(claims, (name: string, value: unknown) => {
    if (!isStorable(name) || (typeof value === 'string' && !isStorable(value))) {
      throw new InvalidClaimsError(`the claim ${JSON.stringify(name)} holds U+0000 or an unpaired surrogate`)
    }
    return value
  })
  // Object.assign, not a spread: a frozen spread copy gets a hidden class of its own (see sessionRecord).
  // A claim named __proto__ would be Object.assign's prototype: such claims are copied as they are.
  return Object.freeze(Object.hasOwn(claims, '__proto__') ? { ...claims } : Object.assign({}, claims))
}

/** The verified payload of an access token. */
export interface AccessClaims {
  /** The user id. */
  sub: string
  /** The session id. */
  sid: string
  /** SHA-256 (base64url) of the fingerprint cookie's value. */
  fph: string
  /** The key a DPoP-bound token is bound to (RFC 9449 §6.1); absent on a cookie-bound one. */
  cnf?: { jkt: string }
  iat: number
  exp: number
  [claim: string]: unknown
}

/** Why an access token was refused (for logs and events, never for the client). */
export type TokenRejection = 'invalid_token' | 'expired_token' | 'invalid_claims'

/**
 * The `typ` header of an access token (RFC 9068): the guard accepts no other,
 * so no other JWT signed with the same key (a limit ticket, a token of the
 * app's own) passes as one.
 */
export const ACCESS_TOKEN_TYPE = 'at+jwt'

/** How many verified tokens `AccessTokens` remembers (each a token string and its flat claims, well under 1 KB). */
const VERIFIED_TOKENS_MAX = 10_000

/**
 * Signs and verifies access tokens, typed `at+jwt` in their header.
 *
 * A client sends the same access token with every request until it expires,
 * and checking its signature is most of what the guard costs. So the claims
 * of recently verified tokens are remembered, keyed by the exact token string
 * (only a token that verified before can hit, byte for byte). The cache only
 * skips the signature and the parsing: `exp` and `nbf` are checked against the
 * clock on every call, so a token is never accepted past its expiry, and the
 * guard still reads the session from the store on every request, so a revoked
 * session is refused as before. Bounded: the least recently used entry makes room.
 */
export class AccessTokens extends TimedJwt {
  readonly #toleranceMs: number
  readonly #verified = new LRUCache<string, AccessClaims>({ max: VERIFIED_TOKENS_MAX })

  constructor (keys: Signer, ttlMs: number, toleranceMs: number) {
    super(keys, ttlMs, ACCESS_TOKEN_TYPE)
    this.#toleranceMs = toleranceMs
  }

  sign (session: SessionRecord, now: number): string {
    const jkt = boundKey(session.fingerprintHash)
    // A DPoP-bound session's token names its key (RFC 9449 §6.1: `cnf.jkt`).
    return this.signClaims({ ...session.claims, sub: session.userId, sid: session.id, fph: session.fingerprintHash, ...(jkt === undefined ? {} : { cnf: { jkt } }) }, now)
  }

  /** The token's claims, or why it is refused. */
  verify (token: string, now: number): AccessClaims | TokenRejection {
    const remembered = this.#verified.get(token)
    if (remembered !== undefined) {
      const refused = this.#rejectByTime(remembered, now)
      if (refused !== undefined) {
        this.#verified.delete(token)
        return refused
      }
      // A copy: the caller may change its claims (request.user), never the remembered ones.
      return { ...remembered }
    }
    const payload = this.payload(token)
    if (payload === undefined) return 'invalid_token'
    if (!isAccessClaims(payload)) return 'invalid_claims'
    const refused = this.#rejectByTime(payload, now)
    if (refused !== undefined) return refused
    // Only flat claims are remembered, so the copy above shares nothing with the caller.
    if (isFlat(payload)) this.#verified.set(token, { ...payload })
    return payload
  }

  #rejectByTime (claims: AccessClaims, now: number): TokenRejection | undefined {
    if (now >= claims.exp * 1000 + this.#toleranceMs) return 'expired_token'
    if (claims.nbf !== undefined && now < (claims.nbf as number) * 1000 - this.#toleranceMs) return 'invalid_token'
    return undefined
  }
}

function isFlat (claims: AccessClaims): boolean {
  for (const name in claims) {
    const value = claims[name]
    if (typeof value === 'object' && value !== null) return false
  }
  return true
}

function isAccessClaims (claims: Record<string, unknown>): claims is AccessClaims {
  return typeof claims.sub === 'string' && claims.sub !== '' &&
    typeof claims.sid === 'string' && claims.sid !== '' &&
    typeof claims.fph === 'string' &&
    Number.isSafeInteger(claims.exp) && Number.isSafeInteger(claims.iat) &&
    // The verifier is told to skip nbf (it is checked against the injected clock
    // in verify()), so its type is checked here: an nbf that is not a number
    // must refuse the token, not be skipped.
    (claims.nbf === undefined || Number.isFinite(claims.nbf))
}
