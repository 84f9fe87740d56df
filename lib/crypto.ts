import { createHmac, createPrivateKey, hash, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto'
import type { KeyNameMaterial } from './tokens/jwt.js'

// One randomFillSync call serves many tokens: a session id, a fingerprint and a
// refresh token per login would otherwise cost three calls into the CSPRNG.
const POOL_SIZE = 4096
const pool = Buffer.allocUnsafe(POOL_SIZE)
let offset = POOL_SIZE

/** `bytes` fresh random bytes as base64url. Bytes are drawn from the pool once and never reused. */
export function randomToken (bytes: number): string {
  if (offset + bytes > POOL_SIZE) {
    randomFillSync(pool)
    offset = 0
  }
  const token = pool.toString('base64url', offset, offset + bytes)
  offset += bytes
  return token
}

/** SHA-256 of a string as base64url (43 characters), in one call. */
export function sha256 (value: string): string {
  return hash('sha256', value, 'base64url')
}

/** HMAC-SHA-256 of a string as base64url. */
export function hmac (key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value).digest('base64url')
}

/**
 * Compares two strings in time that depends only on their length. Strings of
 * different lengths are unequal, and their lengths are not secret here: every
 * value compared (hashes, MACs) has a length fixed by its algorithm.
 */
export function safeEqual (a: string, b: string): boolean {
  if (a.length !== b.length) return false
  return timingSafeEqual(Buffer.from(a), Buffer.from(b))
}

/**
 * Names a store key after a value (a username, a user id, a client's network):
 * never the value, nor a hash anyone could compute from a guess.
 */
export type KeyOf = (purpose: string, value: string) => string

/** Bytes of a store key name kept: 128 bits, far beyond any collision among real names. */
const KEY_NAME_BYTES = 16

/**
 * `keyOf(purpose, value)`: HMAC-SHA-256 of the purpose and the value, first
 * 16 bytes as base64url (22 characters), under a key derived (HKDF-SHA-256,
 * a label of its own) from the current MAC key (or the one secret or private
 * key when `macKeys` is not set), never from a signing key of a keyring, so
 * rotating signing keys keeps every name. A dump of the store is useless for
 * a dictionary attack without that key, and one value under two purposes gives
 * two unrelated names. An asymmetric private key counts by its PKCS#8 DER
 * bytes, so every spelling of one key (PKCS#1 or PKCS#8 PEM, LF or CRLF) gives
 * the same names on every instance that shares the store.
 */
export function createKeyOf (keyNames: KeyNameMaterial): KeyOf {
  const material = keyNames.privateKey
    ? createPrivateKey(keyNames.material).export({ type: 'pkcs8', format: 'der' })
    : keyNames.material
  const key = Buffer.from(hkdfSync('sha256', material, '', 'fastify-session-guard store key names', 32))
  return (purpose, value) => createHmac('sha256', key).update(`${purpose}\0${value}`).digest().toString('base64url', 0, KEY_NAME_BYTES)
}
