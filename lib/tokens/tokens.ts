import { hkdfSync } from 'node:crypto'
import type { JWT } from '@fastify/jwt'
import { LRUCache } from 'lru-cache'
import { hmac, randomToken, safeEqual, sha256 } from '../crypto.js'
import type { SessionRecord } from '../session.js'

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

/** How many verified tokens `AccessTokens` remembers (each a token string and its flat claims, well under 1 KB). */
const VERIFIED_TOKENS_MAX = 10_000

/**
 * A JWT of fixed lifetime through the plugin's own `@fastify/jwt` instance,
 * with the algorithm pinned. `iat` and `exp` come from the injected clock, and
 * expiry is checked by the subclasses against it (the verifier is told to skip
 * it), so one clock rules all.
 */
abstract class TimedJwt {
  readonly #jwt: JWT
  readonly #ttlSeconds: number

  constructor (jwt: JWT, ttlMs: number) {
    this.#jwt = jwt
    this.#ttlSeconds = Math.ceil(ttlMs / 1000)
  }

  protected signClaims (claims: Record<string, unknown>, now: number): string {
    const iat = Math.floor(now / 1000)
    return this.#jwt.sign({ ...claims, iat, exp: iat + this.#ttlSeconds })
  }

  /** The verified payload, or `undefined` for a bad signature, algorithm, issuer or audience. */
  protected payload (token: string): Record<string, unknown> | undefined {
    // The last base64url character of a signature has unused low bits, and the
    // verifier decodes them away: without this check a token would have several
    // spellings, and anything keyed on the token string could be sidestepped.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) return undefined
    try {
      // fast-jwt refuses a token whose payload is not a JSON object.
      return this.#jwt.verify<Record<string, unknown>>(token)
    } catch {
      return undefined
    }
  }
}

/**
 * Signs and verifies access tokens.
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

  constructor (jwt: JWT, ttlMs: number, toleranceMs: number) {
    super(jwt, ttlMs)
    this.#toleranceMs = toleranceMs
  }

  sign (session: SessionRecord, now: number): string {
    return this.signClaims({ ...session.claims, sub: session.userId, sid: session.id, fph: session.fingerprintHash }, now)
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

/** What a session-limit ticket carries: the refused login, bound to its fingerprint and to the sessions it saw. */
export interface LimitTicket {
  userId: string
  claims?: Record<string, unknown>
  remember: boolean
  /** Hash of the fingerprint cookie set with the 409. */
  fingerprintHash: string
  /** Hash of the ids of the user's sessions when the login was refused. */
  activeHash: string
}

const TICKET_TYPE = 'sg-limit'

/**
 * Short-lived signed tickets that let a login refused at the session limit be
 * completed by signing one session out. Signed with the access-token key but
 * typed apart (`typ`), and without `sid`, so neither can pass for the other.
 * Single use: completing one revokes a session, which changes the set of
 * sessions the ticket is bound to.
 */
export class LimitTickets extends TimedJwt {
  sign (ticket: LimitTicket, now: number): string {
    return this.signClaims({
      typ: TICKET_TYPE,
      sub: ticket.userId,
      clm: ticket.claims,
      rem: ticket.remember,
      fph: ticket.fingerprintHash,
      act: ticket.activeHash
    }, now)
  }

  verify (token: string, now: number): LimitTicket | undefined {
    const payload = this.payload(token)
    if (payload === undefined || payload.typ !== TICKET_TYPE || typeof payload.exp !== 'number' || now >= payload.exp * 1000) return undefined
    return {
      userId: payload.sub as string,
      claims: payload.clm as Record<string, unknown> | undefined,
      remember: payload.rem === true,
      fingerprintHash: payload.fph as string,
      activeHash: payload.act as string
    }
  }
}

/** A digest of a set of session ids, whatever their order. */
export function idSetHash (ids: Iterable<string>): string {
  return sha256([...ids].sort().join(' '))
}
