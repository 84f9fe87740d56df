import type { FastifyReply, FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { SessionRecord } from '../session.js'
import { bool, isToken, section, shown, type OptionNames } from '../validate.js'

/** How the plugin's cookies may travel: the `cookies` option. */
export interface CookieAttributes {
  /**
   * The `SameSite` attribute of the fingerprint and refresh cookies.
   * `'strict'`: only requests from the API's own site carry them (the app and
   * the API on one site). `'lax'` also lets top-level navigations from other
   * sites carry them. `'none'`: every request carries them, cross-site too
   * (an app on another site, e.g. https://app.example calling
   * https://api.other); needs secure cookies and `refresh.allowedOrigins`.
   * With `'lax'` or `'none'`, every cookie-authenticated unsafe request (the
   * refresh, the guard on any method but GET, HEAD and OPTIONS, the
   * resolve-limit route) must carry the CSRF header and an allowed `Origin`.
   * @default 'strict'
   */
  sameSite?: 'strict' | 'lax' | 'none'
  /**
   * The `Domain` attribute of the fingerprint and refresh cookies, so every
   * host under it receives them (e.g. `'example.com'` for an app on
   * app.example.com and an API on api.example.com and auth.example.com).
   * A `__Host-` cookie cannot carry a `Domain`: the fingerprint cookie's
   * default name becomes `__Secure-sg-fp`, and a `__Host-` name is refused.
   * A single label (`'com'`, `'localhost'`) is refused; other public suffixes
   * (`'co.uk'`, `'github.io'`) are not known to the plugin: never name one.
   * With a domain, the refresh cookie's path may not be `'/'`.
   * @default undefined (host-only cookies)
   */
  domain?: string
  /**
   * The `Partitioned` attribute (CHIPS): a browser that blocks third-party
   * cookies still keeps these, in a jar of their own for the top-level site.
   * Needs `sameSite: 'none'`.
   * @default false
   */
  partitioned?: boolean
}

/** The top-level cookie options. */
export interface CookieOptions {
  /**
   * Name of the fingerprint cookie. The fingerprint, refresh and access token
   * cookies need three different names.
   * @default '__Host-sg-fp' ('__Secure-sg-fp' with `cookies.domain`, 'sg-fp' when `secureCookies` is false)
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
  /**
   * `SameSite`, `Domain` and `Partitioned` of the fingerprint and refresh
   * cookies. Every unsafe combination is refused at registration.
   * @default { sameSite: 'strict' } (host-only, not partitioned)
   */
  cookies?: CookieAttributes
}

/**
 * Most refresh cookies looked at in one request. A client holds one; a sibling
 * subdomain can plant the same name only once per parent domain and path that
 * reach the refresh route (`/` and the route's own), so the client's own is
 * among these. Each costs a MAC and perhaps a store read: an attacker who sends
 * more gets no more work done.
 */
const MAX_REFRESH_COOKIES = 8

export const COOKIE_OPTION_NAMES = { fingerprintCookie: true, secureCookies: true, development: true, cookies: true } as const satisfies Record<keyof CookieOptions, true>
const ATTRIBUTE_NAMES: OptionNames<CookieAttributes> = { sameSite: true, domain: true, partitioned: true }
const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const

/** The refresh cookie, as the refresh options describe it. */
export interface RefreshCookie {
  /** The name asked for, if any. */
  readonly name: string | undefined
  /** The refresh route's path, and the cookie's when `cookiePath` is not given. */
  readonly path: string
  /** The cookie's own path, as the browser sees the route (behind a proxy that strips a prefix). */
  readonly cookiePath?: string | undefined
  /** Whether the refresh token travels in its cookie at all. */
  readonly inCookie: boolean
}

/** The access token cookie, as the `accessToken` option describes it. */
export interface AccessCookie {
  /** The name asked for, if any. */
  readonly name: string | undefined
  /** Whether the access token travels in its cookie at all. */
  readonly inCookie: boolean
  /** The cookie's `Max-Age`: the access token's lifetime. */
  readonly maxAgeMs: number
}

/** The cookie options after validation. */
export interface CookiePolicy {
  readonly secure: boolean
  readonly fingerprint: string
  readonly refresh: string
  readonly refreshPath: string
  readonly refreshInCookie: boolean
  /** Name of the access token cookie; `undefined` when the token travels only in the `Authorization` header. */
  readonly access: string | undefined
  /** `Max-Age` of the access token cookie, in seconds. */
  readonly accessMaxAge: number
  readonly sameSite: 'Strict' | 'Lax' | 'None'
  /** `undefined` for host-only cookies. */
  readonly domain: string | undefined
  readonly partitioned: boolean
  /** A cookie may arrive with a cross-site request (`SameSite` Lax or None): every cookie-authenticated unsafe request is checked for CSRF. */
  readonly crossSite: boolean
}

export function parseCookieOptions (options: CookieOptions, refresh: RefreshCookie, access: AccessCookie = { name: undefined, inCookie: false, maxAgeMs: 0 }): CookiePolicy {
  const development = options.development === true
  const secure = options.secureCookies === undefined ? true : bool(options.secureCookies, 'secureCookies')
  if (!secure && !development) {
    throw new InvalidOptionError('secureCookies', 'may only be false together with `development: true`')
  }
  const { sameSite, domain, partitioned } = parseAttributes(section(options.cookies, ATTRIBUTE_NAMES, 'cookies'), secure)
  const fingerprintDefault = secure ? (domain === undefined ? '__Host-sg-fp' : '__Secure-sg-fp') : 'sg-fp'
  const fingerprint = hostOnly(cookieName(options.fingerprintCookie ?? fingerprintDefault, 'fingerprintCookie', secure), 'fingerprintCookie', domain)
  const refreshName = hostOnly(cookieName(refresh.name ?? (secure ? '__Secure-sg-rt' : 'sg-rt'), 'refresh.cookie', secure), 'refresh.cookie', domain)
  const taken = new Map([[fingerprint, 'fingerprint']])
  if (refresh.inCookie) unique(taken, refreshName, 'refresh', 'refresh.cookie')
  return {
    secure,
    fingerprint,
    refresh: refreshName,
    refreshPath: refreshCookiePath(refresh, domain),
    refreshInCookie: refresh.inCookie,
    access: access.inCookie
      ? unique(taken, hostOnly(cookieName(access.name ?? (secure ? (domain === undefined ? '__Host-sg-at' : '__Secure-sg-at') : 'sg-at'), 'accessToken.cookie', secure), 'accessToken.cookie', domain), 'access token', 'accessToken.cookie')
      : undefined,
    // As the token's `exp` rounds it: whole seconds, up.
    accessMaxAge: Math.ceil(access.maxAgeMs / 1000),
    sameSite,
    domain,
    partitioned,
    crossSite: sameSite !== 'Strict'
  }
}

/** The `cookies` section: each unsafe combination refused with the reason. */
function parseAttributes (options: CookieAttributes, secure: boolean): Pick<CookiePolicy, 'sameSite' | 'domain' | 'partitioned'> {
  const sameSite = options.sameSite ?? 'strict'
  if (!Object.hasOwn(SAME_SITE, sameSite)) {
    throw new InvalidOptionError('cookies.sameSite', `must be 'strict', 'lax' or 'none', got ${shown(sameSite)}`)
  }
  // Browsers drop a SameSite=None cookie that is not Secure.
  if (sameSite === 'none' && !secure) throw new InvalidOptionError('cookies.sameSite', "'none' needs secure cookies: a browser drops a SameSite=None cookie without Secure")
  const partitioned = options.partitioned === undefined ? false : bool(options.partitioned, 'cookies.partitioned')
  // A partitioned cookie only matters in a cross-site context, where only SameSite=None sends it.
  if (partitioned && sameSite !== 'none') throw new InvalidOptionError('cookies.partitioned', "needs `sameSite: 'none'`: a partitioned cookie is only ever sent cross-site, which only SameSite=None allows")
  return { sameSite: SAME_SITE[sameSite], domain: options.domain === undefined ? undefined : cookieDomain(options.domain), partitioned }
}

// A host name: dot-separated labels of letters, digits and inner hyphens.
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

function cookieDomain (domain: unknown): string {
  if (typeof domain !== 'string' || !DOMAIN.test(domain)) {
    throw new InvalidOptionError('cookies.domain', 'must be a host name such as "example.com" (no scheme, port, path or leading dot)')
  }
  // A top-level domain: no list of public suffixes here, but one label is always one.
  if (!domain.includes('.')) {
    throw new InvalidOptionError('cookies.domain', `must have at least two labels ("example.com"): a cookie for ${JSON.stringify(domain)} would go to every site under it, or be dropped by the browser`)
  }
  return domain.toLowerCase()
}

/** Two of the plugin's cookies under one name would overwrite each other: `name` must not be `taken`. */
function unique (taken: Map<string, string>, name: string, cookie: string, option: string): string {
  const holder = taken.get(name)
  if (holder !== undefined) throw new InvalidOptionError(option, `${JSON.stringify(name)} is already the ${holder} cookie's name: each cookie needs its own, or one overwrites the other`)
  taken.set(name, cookie)
  return name
}

/**
 * The refresh cookie's path: one the browser sends to the refresh route (the
 * route's path or a parent of it, or the path a proxy serves it at, which ends
 * with it), and never `/` with a Domain.
 */
function refreshCookiePath ({ path, cookiePath: asked }: RefreshCookie, domain: string | undefined): string {
  const option = asked === undefined ? 'refresh.path' : 'refresh.cookiePath'
  const value = cookiePath(asked ?? path, option)
  if (!covers(value, path) && !value.endsWith(path)) {
    throw new InvalidOptionError(option, `must reach the refresh route ${JSON.stringify(path)} (its path, a parent of it, or the path a proxy serves it at, ending with it): a browser would never send the cookie to ${JSON.stringify(value)}`)
  }
  if (value === '/' && domain !== undefined) {
    throw new InvalidOptionError(option, '"/" with `cookies.domain` would send the refresh token with every request to every host under the domain: keep it to the refresh route')
  }
  return value
}

/** RFC 6265 §5.1.4: a cookie of path `cookiePath` goes with a request for `path`. */
function covers (cookiePath: string, path: string): boolean {
  return path === cookiePath || (path.startsWith(cookiePath) && (cookiePath.endsWith('/') || path[cookiePath.length] === '/'))
}

/** A `__Host-` cookie must not carry a `Domain`: a browser would drop it. */
function hostOnly (name: string, option: string, domain: string | undefined): string {
  if (domain !== undefined && /^__host-/i.test(name)) {
    throw new InvalidOptionError(option, 'a __Host- cookie cannot carry a Domain (`cookies.domain`): use a __Secure- name')
  }
  return name
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
 * Writes and clears the plugin's cookies: the fingerprint (every path), the
 * refresh token (only the refresh route) and, with `accessToken.transport`
 * `'cookie'` or `'both'`, the access token (every path, for the token's
 * lifetime). All are HttpOnly, Secure, and
 * carry the `cookies` option's `SameSite` (Strict by default), `Domain` and
 * `Partitioned`; a clear carries the same, or the browser keeps the cookie. A remembered session gets persistent cookies that expire
 * with the session's absolute deadline; any other gets session cookies, which
 * the browser drops when it closes.
 *
 * They are written as `Set-Cookie` headers here, not through `@fastify/cookie`,
 * so the plugin never registers it: an app registers its own before or after
 * the plugin, with any options (its `onSend` keeps headers already set). The
 * lines need no encoding: names are checked tokens, values base64url, the
 * path and the domain are checked.
 */
export class SessionCookies {
  readonly #policy: CookiePolicy
  /** What follows the path on every line, set and clear alike. */
  readonly #attributes: string

  constructor (policy: CookiePolicy) {
    this.#policy = policy
    const { domain, secure, sameSite, partitioned } = policy
    this.#attributes = `${domain === undefined ? '' : `; Domain=${domain}`}; HttpOnly${secure ? '; Secure' : ''}; SameSite=${sameSite}${partitioned ? '; Partitioned' : ''}`
  }

  /** Name of the fingerprint cookie. */
  get fingerprintName (): string {
    return this.#policy.fingerprint
  }

  /** Name of the access token cookie, when the token travels in one. */
  get accessName (): string | undefined {
    return this.#policy.access
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

  /**
   * The access token cookie (when the token travels in one), for as long as
   * the token lives: its `exp` counts from the whole second `now` falls in, so
   * a token signed at x.5 s has that much less, and the cookie never outlives
   * it (a server forwarding the cookie can take its absence for "refresh first").
   */
  setAccess (reply: FastifyReply, accessToken: string, now: number): void {
    const { access, accessMaxAge } = this.#policy
    if (access !== undefined) this.#write(reply, `${access}=${accessToken}; Max-Age=${accessMaxAge - (now % 1000 === 0 ? 0 : 1)}`, '/')
  }

  clear (reply: FastifyReply): void {
    this.#write(reply, `${this.#policy.fingerprint}=${EXPIRED}`, '/')
    if (this.#policy.access !== undefined) this.#write(reply, `${this.#policy.access}=${EXPIRED}`, '/')
    if (this.#policy.refreshInCookie) this.#write(reply, `${this.#policy.refresh}=${EXPIRED}`, this.#policy.refreshPath)
  }

  // Fastify appends each `set-cookie` to those already set; a browser applies them in order.
  #write (reply: FastifyReply, cookie: string, path: string): void {
    reply.header('set-cookie', `${cookie}; Path=${path}${this.#attributes}`)
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
