import { hkdfSync } from 'node:crypto'
import { hmac, safeEqual } from '../crypto.js'
import type { MacKey } from './jwt.js'

/** What a device token says, once its MAC, its user and its deadline are checked. */
export interface DeviceToken {
  /** The device's random id (128 bits, base64url): the same for as long as the device stays remembered. */
  readonly deviceId: string
  /** Names the session the token was last written for (a keyed hash of its id), whose revocation forgets the device. */
  readonly link: string
  /** Epoch ms when the token was written. */
  readonly issuedAt: number
  /** Epoch ms when it stops counting. */
  readonly expiresAt: number
}

const VERSION = 'd2'
/** Tokens written before MAC keys had versions: no key version, opened under version `default`. */
const UNVERSIONED = 'd1'
/** A version, a key version of up to 64 characters, two 22-character ids, two epoch-ms times in base 36, a 43-character MAC, and the dots. */
const MAX_TOKEN_LENGTH = 181
const ID = /^[A-Za-z0-9_-]{22}$/
const TIME = /^[0-9a-z]{1,11}$/

/**
 * "Remember this device" tokens: `d2.<MAC key version>.<device id>.<link>.<issued at>.<expires at>.<MAC>`,
 * times in base 36. The MAC (HMAC-SHA-256 under a key derived from the
 * `macKeys` with a label of its own) covers the body and the user id, which
 * the token does not carry: a token written for alice opens for alice only,
 * and says nothing of who she is. The first MAC key version writes new tokens,
 * every version held opens its own, and a `d1` token (written before versions)
 * opens under version `default`. A forged, altered, foreign or expired token
 * opens as `undefined`, never as an error.
 */
export class DeviceTokens {
  readonly #current: { readonly kid: string, readonly key: Buffer }
  readonly #keys: ReadonlyMap<string, Buffer>

  constructor (macKeys: readonly MacKey[]) {
    this.#keys = new Map(macKeys.map(({ kid, material }) => [kid, Buffer.from(hkdfSync('sha256', material, '', 'fastify-session-guard device token', 32))]))
    const { kid } = macKeys[0] as MacKey
    this.#current = { kid, key: this.#keys.get(kid) as Buffer }
  }

  /** The token of `device` for `userId`. */
  issue (userId: string, device: DeviceToken): string {
    const body = `${VERSION}.${this.#current.kid}.${device.deviceId}.${device.link}.${device.issuedAt.toString(36)}.${device.expiresAt.toString(36)}`
    return `${body}.${this.#mac(this.#current.key, body, userId)}`
  }

  /** The device of a token written for `userId` and still current at `now`, or `undefined`. */
  open (token: string, userId: string, now: number): DeviceToken | undefined {
    if (token.length > MAX_TOKEN_LENGTH) return undefined
    const parts = token.split('.')
    const version = parts[0]
    if (version === VERSION ? parts.length !== 7 : version !== UNVERSIONED || parts.length !== 6) return undefined
    const key = this.#keys.get(version === VERSION ? parts[1] as string : 'default')
    const [deviceId, link, issued, expires, mac] = parts.slice(-5) as [string, string, string, string, string]
    if (key === undefined || !ID.test(deviceId) || !ID.test(link) || !TIME.test(issued) || !TIME.test(expires)) return undefined
    if (!safeEqual(mac, this.#mac(key, token.slice(0, token.lastIndexOf('.')), userId))) return undefined
    const expiresAt = parseInt(expires, 36)
    if (now >= expiresAt) return undefined
    return { deviceId, link, issuedAt: parseInt(issued, 36), expiresAt }
  }

  // The user id goes last, after a NUL that no body holds: no body and user pair reads as another.
  #mac (key: Buffer, body: string, userId: string): string {
    return hmac(key, `${body}\0${userId}`)
  }
}
