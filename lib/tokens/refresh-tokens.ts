import { hkdfSync } from 'node:crypto'
import { hmac, randomToken, safeEqual, sha256 } from '../crypto.js'

/** A refresh token we issued, opened. */
export interface OpenedRefreshToken {
  readonly sessionId: string
  /** What the store keeps of it. */
  readonly hash: string
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
  open (token: string): OpenedRefreshToken | undefined {
    const macAt = token.lastIndexOf('.')
    const idEnd = token.indexOf('.')
    if (idEnd <= 0 || macAt === idEnd) return undefined
    const body = token.slice(0, macAt)
    if (!safeEqual(token.slice(macAt + 1), hmac(this.#key, body))) return undefined
    return { sessionId: token.slice(0, idEnd), hash: sha256(token) }
  }
}
