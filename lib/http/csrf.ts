import type { FastifyRequest } from 'fastify'
import { CsrfError } from '../errors.js'

/** The CSRF checks of a cookie-carried credential, after validation. */
export interface CsrfPolicy {
  /** Header the request must carry (lower case). */
  readonly header: string
  /** Origins allowed; empty means only the request's own origin. */
  readonly allowedOrigins: ReadonlySet<string>
}

/**
 * A cookie rides along with any request the browser makes, so a request
 * authenticated by cookie needs proof it came from the app's own script: a
 * custom header (a cross-site form cannot set one, and CORS preflights it)
 * and, when the browser says where it comes from, an allowed origin.
 * Throws `FST_SESSION_GUARD_CSRF` (403) otherwise.
 */
export function checkCsrf (request: FastifyRequest, policy: CsrfPolicy): void {
  if (request.headers[policy.header] === undefined) throw new CsrfError()
  const origin = request.headers.origin
  if (origin === undefined) return
  const allowed = policy.allowedOrigins.size > 0
    ? policy.allowedOrigins.has(origin)
    : origin === `${request.protocol}://${request.host}`
  if (!allowed) throw new CsrfError()
}
