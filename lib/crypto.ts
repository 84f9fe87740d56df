import { createHmac, hash, randomFillSync, timingSafeEqual } from 'node:crypto'

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
