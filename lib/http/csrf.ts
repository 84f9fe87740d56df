import type { FastifyRequest } from 'fastify'
import { CsrfError, InvalidOptionError } from '../errors.js'

/** The CSRF checks of a cookie-carried credential, after validation. */
export interface CsrfPolicy {
  /** Header the request must carry (lower case). */
  readonly header: string
  /** Origins allowed; empty means only the request's own origin. */
  readonly allowedOrigins: ReadonlySet<string>
  /**
   * The cookies may arrive with a cross-site request (`SameSite` Lax or None):
   * a request must then say where it comes from (`Origin`), and every
   * cookie-authenticated unsafe request is checked, not only the refresh.
   */
  readonly crossSite: boolean
}

/**
 * The refresh's CSRF policy (`refresh.csrfHeader`, `refresh.allowedOrigins`)
 * as the cookies' `SameSite` makes it: cross-site unless Strict. With None,
 * any site's requests carry the cookies, and an empty list (only the request's
 * own origin, which behind a proxy may not be the one the browser saw) is
 * refused: the origins of the app must be named.
 */
export function csrfPolicyFor (csrf: CsrfPolicy, sameSite: 'Strict' | 'Lax' | 'None'): CsrfPolicy {
  if (sameSite === 'None' && csrf.allowedOrigins.size === 0) {
    throw new InvalidOptionError('refresh.allowedOrigins', "must list the app's origins with `cookies.sameSite: 'none'`: every site's requests carry the cookies")
  }
  if (sameSite === 'None') {
    for (const [i, origin] of [...csrf.allowedOrigins].entries()) {
      if (origin.startsWith('http://') && !LOOPBACK_ORIGIN.test(origin)) {
        throw new InvalidOptionError(`refresh.allowedOrigins[${i}]`, "must be https with `cookies.sameSite: 'none'`: anyone on the network can run script in an http page, and the cookies go with its requests " +
          `(only http://localhost, 127.0.0.1 and [::1] may be http), got ${JSON.stringify(origin)}`)
      }
    }
  }
  return { ...csrf, crossSite: sameSite !== 'Strict' }
}

/** An http origin no one on the network can serve: the loopback host, any port (a browser's potentially trustworthy origins). */
const LOOPBACK_ORIGIN = /^http:\/\/(?:localhost|127\.0\.0\.1|\[::1\])(?::\d+)?$/

/** Methods that change nothing (RFC 9110): the guard checks every other one under a cross-site policy. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS'])

/** GET, HEAD or OPTIONS: a method that changes nothing. */
function isSafeMethod (method: string): boolean {
  return SAFE_METHODS.has(method)
}

/** Whether a cookie-authenticated request with this method needs `checkCsrf` beyond the refresh: only unsafe ones, only when cookies may arrive cross-site. */
export function needsCsrfCheck (request: FastifyRequest, policy: CsrfPolicy): boolean {
  return policy.crossSite && !isSafeMethod(request.method)
}

/**
 * A cookie rides along with any request the browser makes, so a request
 * authenticated by cookie needs proof it came from the app's own script: a
 * custom header (a cross-site form cannot set one, and CORS preflights it)
 * and an allowed origin. With SameSite=Strict cookies (the default) a
 * request without `Origin` passes (the cookie itself came from the same
 * site); with Lax or None it is refused: a browser sends `Origin` with every
 * request but a GET or HEAD, and the cookie no longer says where it came from.
 * Throws `FST_SESSION_GUARD_CSRF` (403) otherwise, with the reason (`csrfRefusal`).
 */
export function checkCsrf (request: FastifyRequest, policy: CsrfPolicy): void {
  if (request.headers[policy.header] === undefined) throw csrfRefusal(request, 'csrf_header_missing', policy.header)
  if (request.headers.origin === undefined) {
    if (policy.crossSite) throw csrfRefusal(request, 'csrf_origin_missing')
  } else if (!isAllowedOrigin(request, policy.allowedOrigins)) {
    throw csrfRefusal(request, 'csrf_origin_not_allowed')
  }
}

/** Why a request failed the CSRF checks: in the log line (at debug) and, in words, in the 403's message. */
export type CsrfRejection = 'csrf_header_missing' | 'csrf_origin_missing' | 'csrf_origin_not_allowed'

/** Longest `Origin` a log line repeats: it is the client's text. */
const MAX_LOGGED_ORIGIN = 256

/**
 * The one CSRF refusal: logs its reason at debug with the request's `Origin`,
 * and returns the `FST_SESSION_GUARD_CSRF` (403) to throw, whose message says
 * what to fix: the header's name (configuration, not a secret), or the
 * `Origin`, never repeated to the client.
 */
export function csrfRefusal (request: FastifyRequest, reason: CsrfRejection, header?: string): Error {
  const origin = request.headers.origin
  request.log.debug({ reason, origin: origin?.slice(0, MAX_LOGGED_ORIGIN) }, 'session guard: cross-site request refused')
  const why = reason === 'csrf_header_missing'
    ? `the ${String(header)} header is missing (any value; a cross-site form cannot send it)`
    : reason === 'csrf_origin_missing' ? 'the Origin header is missing' : 'its Origin is not one of the allowed origins'
  return new CsrfError(why)
}

/**
 * The rule for a credential the browser sends whether or not the page's own
 * script chose to: the access token cookie, and a token an `extractToken`
 * finds (in the query string, a WebSocket subprotocol: places a page of any
 * origin can make the browser fill, with a form's action or a `<img>`). An
 * unsafe method needs `checkCsrf` (the header and an allowed origin) under
 * every `SameSite`, even Strict: a page on a sibling subdomain is same-site,
 * and a URL carries its token to any site. A safe method needs no header, but
 * an `Origin` it has must be allowed: a foreign one on a GET is another site's
 * fetch or `EventSource`, riding on the credential. Throws `FST_SESSION_GUARD_CSRF` (403).
 */
export function checkAmbientCredential (request: FastifyRequest, policy: CsrfPolicy): void {
  if (!isSafeMethod(request.method)) checkCsrf(request, policy)
  else if (!isAllowedOrigin(request, policy.allowedOrigins)) throw csrfRefusal(request, 'csrf_origin_not_allowed')
}

/**
 * The one origin rule, for the refresh and for the guard's WebSocket upgrades
 * and event streams: a request that says where it comes from (`Origin`) comes
 * from an allowed origin, or from its own when the list is empty. A request
 * without `Origin` passes: browsers send it on every cross-origin request
 * (and on every WebSocket upgrade), so its absence is a same-origin request or
 * a client that is not a browser, which no other site can drive. (`checkCsrf`
 * refuses it itself when the cookies may arrive cross-site.)
 */
export function isAllowedOrigin (request: FastifyRequest, allowedOrigins: ReadonlySet<string>): boolean {
  const origin = request.headers.origin
  if (origin === undefined) return true
  return allowedOrigins.size > 0
    ? allowedOrigins.has(origin)
    : origin === `${request.protocol}://${request.host}`
}
