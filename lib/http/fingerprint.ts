import type { FastifyRequest } from 'fastify'
import { randomToken, sha256 } from '../crypto.js'
import { cookieValues } from './cookies.js'

/**
 * The token-sidejacking defence (OWASP JWT cheat sheet): each login gets a
 * random fingerprint kept in a hardened HttpOnly cookie; the access token and
 * the store carry only its SHA-256. A token stolen by script is useless without
 * the cookie, which script cannot read.
 */

/** 256 random bits as base64url. */
const FINGERPRINT_BYTES = 32
const FINGERPRINT = /^[A-Za-z0-9_-]{43}$/

export function createFingerprint (): { value: string, hash: string } {
  const value = randomToken(FINGERPRINT_BYTES)
  return { value, hash: sha256(value) }
}

/** Why a fingerprint cookie was refused (for logs, never for the client). */
export type FingerprintRejection = 'missing_fingerprint' | 'malformed_fingerprint' | 'duplicate_fingerprint'

const REJECTIONS: ReadonlySet<string> = new Set<FingerprintRejection>(['missing_fingerprint', 'malformed_fingerprint', 'duplicate_fingerprint'])

export function isFingerprintRejection (value: string): value is FingerprintRejection {
  return REJECTIONS.has(value)
}

/**
 * The request's fingerprint cookie: the first of its name, percent-decoded, as
 * `@fastify/cookie` keeps it (read here: the plugin does not depend on the app's parser).
 */
export function readFingerprint (request: FastifyRequest, name: string): string | undefined {
  const value = cookieValues(request.headers.cookie, name, { limit: 1 })[0]
  return value?.includes('%') === true ? decode(value) : value
}

function decode (value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

/**
 * The hash of the request's fingerprint cookie, or why there is none. A cookie
 * that is not exactly what we issue (wrong length, other characters, sent
 * twice) is refused before it is hashed.
 */
export function readFingerprintHash (request: FastifyRequest, name: string): string | FingerprintRejection {
  const value = readFingerprint(request, name)
  if (value === undefined) return 'missing_fingerprint'
  if (!FINGERPRINT.test(value)) return 'malformed_fingerprint'
  // The cookie parser keeps the first of two same-named cookies; a second one
  // (say, planted on a sibling domain, in any case) must not be silently ignored.
  if (cookieValues(request.headers.cookie, name, { limit: 2, ignoreCase: true }).length > 1) return 'duplicate_fingerprint'
  return sha256(value)
}
