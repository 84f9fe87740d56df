import { hkdfSync } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
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

/**
 * Signs and verifies access tokens through the plugin's own `@fastify/jwt`
 * instance, with the algorithm pinned. Expiry is checked here against the
 * injected clock (the verifier is told to skip it), so one clock rules all.
 */
export class AccessTokens {
  readonly #jwt: JWT
  readonly #ttlSeconds: number
  readonly #toleranceMs: number

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
    // The last base64url character of a signature has unused low bits, and the
    // verifier decodes them away: without this check a token would have several
    // spellings, and anything keyed on the token string could be sidestepped.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) return 'invalid_token'
    let payload: unknown
    try {
      payload = this.#jwt.verify(token)
    } catch {
      return 'invalid_token'
    }
    if (!isAccessClaims(payload)) return 'invalid_claims'
    if (now >= payload.exp * 1000 + this.#toleranceMs) return 'expired_token'
    if (payload.nbf !== undefined && now < (payload.nbf as number) * 1000 - this.#toleranceMs) return 'invalid_token'
    return payload
  }
}

// fast-jwt refuses a token whose payload is not a JSON object, so only its fields are checked here.
function isAccessClaims (payload: unknown): payload is AccessClaims {
  const claims = payload as Record<string, unknown>
  return typeof claims.sub === 'string' && claims.sub !== '' &&
    typeof claims.sid === 'string' && claims.sid !== '' &&
    typeof claims.fph === 'string' &&
    Number.isSafeInteger(claims.exp) && Number.isSafeInteger(claims.iat) &&
    // The verifier is told to skip nbf (it is checked against the injected clock
    // in verify()), so its type is checked here: an nbf that is not a number
    // must refuse the token, not be skipped.
    (claims.nbf === undefined || Number.isFinite(claims.nbf))
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
