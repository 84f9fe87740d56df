import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { section, shown, type OptionNames } from '../validate.js'
import { cookieValues } from './cookies.js'
import { checkAmbientCredential, type CsrfPolicy } from './csrf.js'

/** How the access token travels: the `accessToken` option. */
export interface AccessTokenOptions {
  /**
   * Where the guard takes the access token from. `'header'`: the
   * `Authorization: Bearer` header only. `'both'`: the plugin also writes it
   * into an HttpOnly cookie at each sign-in and refresh, and the guard takes
   * it from the header first, else from the cookie, so a server that renders
   * pages for the user (Next.js, Nuxt, Remix …) calls the API by forwarding
   * the browser's `Cookie` header. `'cookie'`: the cookie only, and the
   * `Authorization` header is not looked at. A cookie-carried token on an
   * unsafe method (any but GET, HEAD and OPTIONS) always needs the CSRF
   * header (`refresh.csrfHeader`) and an allowed `Origin`, whatever
   * `cookies.sameSite` says.
   * @default 'header'
   */
  transport?: 'header' | 'cookie' | 'both'
  /**
   * Name of the access token cookie.
   * @default '__Host-sg-at' ('__Secure-sg-at' with `cookies.domain`, 'sg-at' when `secureCookies` is false)
   */
  cookie?: string
}

const ACCESS_TOKEN_OPTION_NAMES: OptionNames<AccessTokenOptions> = { transport: true, cookie: true }

/** The `accessToken` option after validation. */
export interface AccessTokenPolicy {
  readonly transport: 'header' | 'cookie' | 'both'
  /** The cookie name asked for; `parseCookieOptions` checks it and picks the default. */
  readonly cookie: string | undefined
}

const TRANSPORTS: ReadonlySet<string> = new Set(['header', 'cookie', 'both'])

export function parseAccessTokenOptions (value: AccessTokenOptions | undefined): AccessTokenPolicy {
  const options = section(value, ACCESS_TOKEN_OPTION_NAMES, 'accessToken')
  const transport = options.transport ?? 'header'
  if (!TRANSPORTS.has(transport)) {
    throw new InvalidOptionError('accessToken.transport', `must be 'header', 'cookie' or 'both', got ${shown(transport)}`)
  }
  if (transport === 'header' && options.cookie !== undefined) {
    throw new InvalidOptionError('accessToken.cookie', "needs `transport: 'cookie'` or `'both'`: with 'header' no cookie is written")
  }
  return { transport, cookie: options.cookie }
}

/**
 * Where the access token is, for a client that cannot set `Authorization`: a
 * browser's `WebSocket` and `EventSource`. Returns the token, or `undefined`
 * to let the guard read `Authorization` as usual. As `@fastify/jwt`'s `extractToken`.
 * The token it returns is checked as a cookie-carried one is: the CSRF header
 * and an allowed `Origin` on an unsafe method, an allowed `Origin` (when sent) on any.
 */
export type TokenExtractor = (request: FastifyRequest) => string | undefined

/** Why a request carries no usable access token (for logs, never for the client). */
export type TokenSourceRejection = 'missing_token' | 'malformed_token' | 'duplicate_token'

/** Reads the request's access token, or says why there is none; may throw `FST_SESSION_GUARD_CSRF`. */
export type TokenSource = (request: FastifyRequest) => { token: string } | { rejected: TokenSourceRejection }

/** Longest `Authorization` header the guard will look at. */
const MAX_AUTHORIZATION_LENGTH = 8192
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const MAX_COOKIE_TOKEN_LENGTH = 8192

/**
 * Where the guard finds the access token: what the route's `config.extractToken`
 * or the plugin's `extractToken` returns first, then the `Authorization` header
 * (unless `transport` is `'cookie'`), else the access token cookie (unless it
 * is `'header'`). What an extractor returns must be a token of at most 8 KiB. A header that is there but malformed is refused, never passed
 * over for the cookie. Two cookies of the name (one planted from a sibling
 * domain) are refused, as the fingerprint's are.
 *
 * A cookie rides along with any request the browser makes, and a token that an
 * extractor reads (the query string, a subprotocol) is in a place a page can
 * make the browser fill: both are checked here by `checkAmbientCredential`,
 * always, even under `SameSite=Strict` (a page on a sibling subdomain is
 * same-site, and a Strict cookie goes with its requests). The check is the
 * refresh's: the CSRF header and an allowed `Origin` on an unsafe method, an
 * allowed `Origin` on a safe one. An extractor cannot say where it found the
 * token, so all of them are held to it; a WebSocket or `EventSource` route is
 * a GET, and meets only the `Origin` rule that the guard applies to it anyway.
 * Only `Authorization`, which no page can make a browser send, is exempt.
 */
export function createTokenSource (
  policy: AccessTokenPolicy,
  cookieName: string | undefined,
  csrf: CsrfPolicy,
  extractToken: TokenExtractor | undefined,
  routeExtractors: () => boolean
): TokenSource {
  const fromHeader = policy.transport !== 'cookie'
  const fromCookie = cookieName !== undefined && policy.transport !== 'header'
  return function accessToken (request) {
    // `request.routeOptions` builds a new object at each read: only read once some route has its own extractor.
    const extract = (routeExtractors() ? request.routeOptions.config.extractToken : undefined) ?? extractToken
    const extracted = extract?.(request)
    if (extracted !== undefined) {
      if (typeof extracted !== 'string' || extracted.length > MAX_AUTHORIZATION_LENGTH || !JWT.test(extracted)) return { rejected: 'malformed_token' }
      checkAmbientCredential(request, csrf)
      return { token: extracted }
    }
    const authorization = fromHeader ? request.headers.authorization : undefined
    if (authorization !== undefined) {
      const match = authorization.length <= MAX_AUTHORIZATION_LENGTH ? BEARER.exec(authorization) : null
      return match === null ? { rejected: 'malformed_token' } : { token: match[1] as string }
    }
    if (!fromCookie) return { rejected: 'missing_token' }
    const values = cookieValues(request.headers.cookie, cookieName, { limit: 2, ignoreCase: true })
    if (values.length === 0) return { rejected: 'missing_token' }
    if (values.length > 1) return { rejected: 'duplicate_token' }
    const token = values[0] as string
    if (token.length > MAX_COOKIE_TOKEN_LENGTH || !JWT.test(token)) return { rejected: 'malformed_token' }
    checkAmbientCredential(request, csrf)
    return { token }
  }
}
