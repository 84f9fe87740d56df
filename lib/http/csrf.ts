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
  if (!isAllowedOrigin(request, policy.allowedOrigins)) throw new CsrfError()
}

/**
 * The one origin rule, for the refresh and for the guard's WebSocket upgrades
 * and event streams: a request that says where it comes from (`Origin`) comes
 * from an allowed origin, or from its own when the list is empty. A request
 * without `Origin` passes: browsers send it on every cross-origin request
 * (and on every WebSocket upgrade), so its absence is a same-origin request or
 * a client that is not a browser, which no other site can drive.
 */
export function isAllowedOrigin (request: FastifyRequest, allowedOrigins: ReadonlySet<string>): boolean {
  const origin = request.headers.origin
  if (origin === undefined) return true
  return allowedOrigins.size > 0
    ? allowedOrigins.has(origin)
    : origin === `${request.protocol}://${request.host}`
}
