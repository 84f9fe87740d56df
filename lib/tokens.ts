import { hkdfSync } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import { LRUCache } from 'lru-cache'
import { hmac, randomToken, safeEqual, sha256 } from './crypto.js'
import type { SessionRecord } from './session.js'

/** Claims the plugin puts in every access token; the app's own claims may not use these names. */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['sub', 'sid', 'fph', 'iat', 'exp', 'nbf', 'jti', 'iss', 'aud'])

/** The verified payload of an access token. */
export interface AccessClaims {
  /** The user id. */
  sub: string
  /** The session id. */
  sid: string
  /** SHA-256 (base64url) of the fingerprint cookie's value. */
  fph: string
  iat: number
  exp: number
  [claim: string]: unknown
}

/** Why an access token was refused (for logs and events, never for the client). */
export type TokenRejection = 'invalid_token' | 'expired_token' | 'invalid_claims'

/** How many verified tokens `AccessTokens` remembers (each is a token string and its flat claims, well under 1 KB). */
const VERIFIED_TOKENS_MAX = 10_000

/**
 * Signs and verifies access tokens through the plugin's own `@fastify/jwt`
 * instance, with the algorithm pinned. Expiry is checked here against the
 * injected clock (the verifier is told to skip it), so one clock rules all.
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
export class AccessTokens {
  readonly #jwt: JWT
  readonly #ttlSeconds: number
  readonly #toleranceMs: number
  readonly #verified = new LRUCache<string, AccessClaims>({ max: VERIFIED_TOKENS_MAX })

  constructor (jwt: JWT, ttlMs: number, toleranceMs: number) {
    this.#jwt = jwt
    this.#ttlSeconds = Math.ceil(ttlMs / 1000)
    this.#toleranceMs = toleranceMs
  }

  sign (session: SessionRecord, now: number): string {
    const iat = Math.floor(now / 1000)
    return this.#jwt.sign({
      ...session.claims,
      sub: session.userId,
      sid: session.id,
      fph: session.fingerprintHash,
      iat,
      exp: iat + this.#ttlSeconds
    })
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
    let payload: unknown
    try {
      payload = this.#jwt.verify(token)
    } catch {
      return 'invalid_token'
    }
    if (!isAccessClaims(payload)) return 'invalid_claims'
    const refused = this.#rejectByTime(payload, now)
    if (refused !== undefined) return refused
    // Only flat claims are remembered, so the copy above shares nothing with the caller.
    if (isFlat(payload)) this.#remember(token, payload)
    return payload
  }

  #rejectByTime (claims: AccessClaims, now: number): TokenRejection | undefined {
    if (now >= claims.exp * 1000 + this.#toleranceMs) return 'expired_token'
    if (typeof claims.nbf === 'number' && now < claims.nbf * 1000 - this.#toleranceMs) return 'invalid_token'
    return undefined
  }

  #remember (token: string, claims: AccessClaims): void {
    // Copied so the verifier's object, which the caller gets and may change, is not the one kept.
    this.#verified.set(token, { ...claims })
  }
}

function isFlat (claims: AccessClaims): boolean {
  for (const name in claims) {
    const value = claims[name]
    if (typeof value === 'object' && value !== null) return false
  }
  return true
}

function isAccessClaims (payload: unknown): payload is AccessClaims {
  if (typeof payload !== 'object' || payload === null) return false
  const claims = payload as Record<string, unknown>
  return typeof claims.sub === 'string' && claims.sub !== '' &&
    typeof claims.sid === 'string' && claims.sid !== '' &&
    typeof claims.fph === 'string' &&
    Number.isSafeInteger(claims.exp) && Number.isSafeInteger(claims.iat)
}

/**
 * Opaque refresh tokens: `<session id>.<256 random bits>.<MAC>`.
 *
 * The store keeps only each token's SHA-256. The MAC (keyed from the signing
 * secret) proves that a token which is no longer current was really issued by
 * us, so presenting an old one is treated as theft, while a forged one is
 * merely refused and cannot be used to revoke someone's session.
 */
export class RefreshTokens {
  readonly #key: Buffer

  constructor (keyMaterial: string | Buffer) {
    this.#key = Buffer.from(hkdfSync('sha256', keyMaterial, '', 'fastify-session-guard refresh token', 32))
  }

  /** A new token for a session, with the hash to store. */
  issue (sessionId: string): { token: string, hash: string } {
    const body = `${sessionId}.${randomToken(32)}`
    const token = `${body}.${hmac(this.#key, body)}`
    return { token, hash: sha256(token) }
  }

  /** The session id and hash of a token we issued, or `undefined` for anything else. */
  open (token: string): { sessionId: string, hash: string } | undefined {
    const macAt = token.lastIndexOf('.')
    const idEnd = token.indexOf('.')
    if (idEnd <= 0 || macAt === idEnd) return undefined
    const body = token.slice(0, macAt)
    if (!safeEqual(token.slice(macAt + 1), hmac(this.#key, body))) return undefined
    return { sessionId: token.slice(0, idEnd), hash: sha256(token) }
  }
}
