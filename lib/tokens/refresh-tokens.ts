import { hkdfSync } from 'node:crypto'
import { hmac, randomToken, safeEqual, sha256 } from '../crypto.js'
import type { MacKey } from './jwt.js'

/** A refresh token we issued, opened. */
export interface OpenedRefreshToken {
  readonly sessionId: string
  /** What the store keeps of it. */
  readonly hash: string
}

/** The version a token without one was MACed with: tokens issued before MAC keys had versions. */
const UNVERSIONED = 'default'

/**
 * Opaque refresh tokens: `<session id>.<256 random bits>.<MAC key version>.<MAC>`.
 *
 * The store keeps only each token's SHA-256. The MAC proves that a token which
 * is no longer current was really issued by us, so presenting an old one is
 * treated as theft, while a forged one is merely refused and cannot be used to
 * revoke someone's session. Its key is derived from the `macKeys` (never from a
 * signing key): the first version MACs new tokens, and every version still
 * configured opens the tokens that name it, so rotating a MAC key, like
 * rotating a signing key, logs nobody out. A token of three parts (issued
 * before versions) is opened under version `default`.
 */
export class RefreshTokens {
  readonly #current: { readonly kid: string, readonly key: Buffer }
  readonly #keys: ReadonlyMap<string, Buffer>

  constructor (macKeys: readonly MacKey[]) {
    this.#keys = new Map(macKeys.map(({ kid, material }) => [kid, Buffer.from(hkdfSync('sha256', material, '', 'fastify-session-guard refresh token', 32))]))
    const { kid } = macKeys[0] as MacKey
    this.#current = { kid, key: this.#keys.get(kid) as Buffer }
  }

  /** A new token for a session, with the hash to store. */
  issue (sessionId: string): { token: string, hash: string } {
    const body = `${sessionId}.${randomToken(32)}.${this.#current.kid}`
    const token = `${body}.${hmac(this.#current.key, body)}`
    return { token, hash: sha256(token) }
  }

  /** The session id and hash of a token we issued, or `undefined` for anything else. */
  open (token: string): OpenedRefreshToken | undefined {
    const parts = token.split('.')
    if (parts.length !== 3 && parts.length !== 4) return undefined
    const key = this.#keys.get(parts.length === 4 ? parts[2] as string : UNVERSIONED)
    if (key === undefined || parts[0] === '') return undefined
    const macAt = token.lastIndexOf('.')
    if (!safeEqual(token.slice(macAt + 1), hmac(key, token.slice(0, macAt)))) return undefined
    return { sessionId: parts[0] as string, hash: sha256(token) }
  }
}
