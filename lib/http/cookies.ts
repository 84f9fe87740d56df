import type { FastifyReply, FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { SessionRecord } from '../session.js'
import { bool, isToken } from '../validate.js'

/** The top-level cookie options. */
export interface CookieOptions {
  /**
   * Name of the fingerprint cookie.
   * @default '__Host-sg-fp' ('sg-fp' when `secureCookies` is false)
   */
  fingerprintCookie?: string
  /**
   * Set the `Secure` attribute (and use `__Host-`/`__Secure-` names). May only
   * be turned off together with `development: true`.
   * @default true
   */
  secureCookies?: boolean
  /**
   * Allows settings that are unsafe in production (`secureCookies: false`).
   * @default false
   */
  development?: boolean
}

/**
 * Most refresh cookies looked at in one request. A client holds one; a sibling
 * subdomain can plant the same name only once per parent domain and path that
 * reach the refresh route (`/` and the route's own), so the client's own is
 * among these. Each costs a MAC and perhaps a store read: an attacker who sends
 * more gets no more work done.
 */
const MAX_REFRESH_COOKIES = 8

export const COOKIE_OPTION_NAMES = { fingerprintCookie: true, secureCookies: true, development: true } as const satisfies Record<keyof CookieOptions, true>

/** The refresh cookie, as the refresh options describe it. */
export interface RefreshCookie {
  /** The name asked for, if any. */
  readonly name: string | undefined
  readonly path: string
  /** Whether the refresh token travels in its cookie at all. */
  readonly inCookie: boolean
}

/** The cookie options after validation. */
export interface CookiePolicy {
  readonly secure: boolean
  readonly fingerprint: string
  readonly refresh: string
  readonly refreshPath: string
  readonly refreshInCookie: boolean
}

export function parseCookieOptions (options: CookieOptions, refresh: RefreshCookie): CookiePolicy {
  const development = options.development === true
  const secure = options.secureCookies === undefined ? true : bool(options.secureCookies, 'secureCookies')
  if (!secure && !development) {
    throw new InvalidOptionError('secureCookies', 'may only be false together with `development: true`')
  }
  return {
    secure,
    fingerprint: cookieName(options.fingerprintCookie ?? (secure ? '__Host-sg-fp' : 'sg-fp'), 'fingerprintCookie', secure),
    refresh: cookieName(refresh.name ?? (secure ? '__Secure-sg-rt' : 'sg-rt'), 'refresh.cookie', secure),
    refreshPath: cookiePath(refresh.path, 'refresh.path'),
    refreshInCookie: refresh.inCookie
  }
}

// RFC 6265 path-value: any CHAR but controls and ";".
const PATH = /^\/[\x20-\x3a\x3c-\x7e]*$/

function cookiePath (path: string, option: string): string {
  if (!PATH.test(path)) throw new InvalidOptionError(option, 'must be a cookie path: no ";" or control characters')
  return path
}

function cookieName (name: string, option: string, secure: boolean): string {
  if (!isToken(name)) throw new InvalidOptionError(option, 'must be a valid cookie name')
  if (!secure && /^__(host|secure)-/i.test(name)) {
    throw new InvalidOptionError(option, 'a __Host- or __Secure- name needs secure cookies')
  }
  return name
}

/** Checks a cookie name option (a token; no `__Host-`/`__Secure-` prefix without secure cookies), for other features' cookies. */
export const checkCookieName: (name: string, option: string, secure: boolean) => string = cookieName

/** An empty value that expires at once, as `@fastify/cookie`'s `clearCookie` writes it. */
const EXPIRED = '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'

/**
 * Writes and clears the plugin's two cookies: the fingerprint (every path) and
 * the refresh token (only the refresh route). Both are HttpOnly, Secure and
 * SameSite=Strict. A remembered session gets persistent cookies that expire
 * with the session's absolute deadline; any other gets session cookies, which
 * the browser drops when it closes.
 *
 * They are written as `Set-Cookie` headers here, not through `@fastify/cookie`,
 * so the plugin never registers it: an app registers its own before or after
 * the plugin, with any options (its `onSend` keeps headers already set). The
 * lines need no encoding: names are checked tokens, values base64url, the
 * path is checked.
 */
export class SessionCookies {
  readonly #policy: CookiePolicy

  constructor (policy: CookiePolicy) {
    this.#policy = policy
  }

  /** Name of the fingerprint cookie. */
  get fingerprintName (): string {
    return this.#policy.fingerprint
  }

  /**
   * Every refresh token the request carries in a cookie, in the order sent: the
   * client's own, and any planted from a parent domain (which the cookie parser
   * would have kept instead, being sent first). Only the exact name counts, as
   * browsers and the parser compare names; at most `MAX_REFRESH_COOKIES`.
   */
  refreshTokens (request: FastifyRequest): string[] {
    return cookieValues(request.headers.cookie, this.#policy.refresh, { limit: MAX_REFRESH_COOKIES })
  }

  set (reply: FastifyReply, session: SessionRecord, fingerprint: string | undefined, refreshToken: string | undefined, now: number): void {
    const { fingerprint: fingerprintName, refresh, refreshPath, refreshInCookie } = this.#policy
    const maxAgeMs = session.remembered ? session.absoluteExpiresAt - now : undefined
    const maxAge = maxAgeMs === undefined ? '' : `; Max-Age=${Math.floor(maxAgeMs / 1000)}`
    if (fingerprint !== undefined) this.#write(reply, `${fingerprintName}=${fingerprint}${maxAge}`, '/')
    if (refreshInCookie && refreshToken !== undefined) this.#write(reply, `${refresh}=${refreshToken}${maxAge}`, refreshPath)
  }

  clear (reply: FastifyReply): void {
    this.#write(reply, `${this.#policy.fingerprint}=${EXPIRED}`, '/')
    if (this.#policy.refreshInCookie) this.#write(reply, `${this.#policy.refresh}=${EXPIRED}`, this.#policy.refreshPath)
  }

  // Fastify appends each `set-cookie` to those already set; a browser applies them in order.
  #write (reply: FastifyReply, cookie: string, path: string): void {
    reply.header('set-cookie', `${cookie}; Path=${path}; HttpOnly${this.#policy.secure ? '; Secure' : ''}; SameSite=Strict`)
  }
}

const patterns = new Map<string, RegExp>()

/**
 * The values of the cookies named `name` in a `Cookie` header, in the order
 * sent, at most `limit`. The cookie parser keeps only the first of same-named
 * cookies, and a cookie planted from a sibling subdomain can be that first one:
 * whoever must see them all (to refuse a duplicate, or to find the real one
 * among planted ones) reads them here. Names are trimmed, as the parser trims
 * them, and compared exactly, or without case with `ignoreCase` (browsers match
 * the `__Host-`/`__Secure-` prefixes without case); another cookie whose name
 * or value merely contains the name does not count (a value cannot hold a `;`).
 * Values are trimmed, not decoded: the plugin's cookies never need decoding.
 * A regex per name, compiled once, that runs in linear time.
 */
export function cookieValues (header: string | undefined, name: string, { limit, ignoreCase = false }: { limit: number, ignoreCase?: boolean }): string[] {
  if (header === undefined) return []
  const flags = ignoreCase ? 'gi' : 'g'
  let pattern = patterns.get(flags + name)
  if (pattern === undefined) {
    pattern = new RegExp(`(?:^|;)[ \\t]*${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ \\t]*=([^;]*)`, flags)
    patterns.set(flags + name, pattern)
  }
  pattern.lastIndex = 0
  const values: string[] = []
  while (values.length < limit) {
    const match = pattern.exec(header)
    if (match === null) break
    values.push((match[1] as string).trim())
  }
  return values
}
