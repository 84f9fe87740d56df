import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply } from 'fastify'
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
    refreshPath: refresh.path,
    refreshInCookie: refresh.inCookie
  }
}

function cookieName (name: string, option: string, secure: boolean): string {
  if (!isToken(name)) throw new InvalidOptionError(option, 'must be a valid cookie name')
  if (!secure && /^__(host|secure)-/i.test(name)) {
    throw new InvalidOptionError(option, 'a __Host- or __Secure- name needs secure cookies')
  }
  return name
}

/**
 * Writes and clears the plugin's two cookies: the fingerprint (every path) and
 * the refresh token (only the refresh route). Both are HttpOnly, Secure and
 * SameSite=Strict. A remembered session gets persistent cookies that expire
 * with the session's absolute deadline; any other gets session cookies, which
 * the browser drops when it closes.
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

  /** The refresh token the request carries in its cookie, if any. */
  refreshToken (request: { cookies: Record<string, string | undefined> }): string | undefined {
    return request.cookies[this.#policy.refresh]
  }

  set (reply: FastifyReply, session: SessionRecord, fingerprint: string | undefined, refreshToken: string | undefined, now: number): void {
    const { fingerprint: fingerprintName, refresh, refreshPath, refreshInCookie } = this.#policy
    const maxAgeMs = session.remembered ? session.absoluteExpiresAt - now : undefined
    if (fingerprint !== undefined) reply.setCookie(fingerprintName, fingerprint, this.#attributes('/', maxAgeMs))
    if (refreshInCookie && refreshToken !== undefined) {
      reply.setCookie(refresh, refreshToken, this.#attributes(refreshPath, maxAgeMs))
    }
  }

  clear (reply: FastifyReply): void {
    reply.clearCookie(this.#policy.fingerprint, this.#attributes('/', undefined))
    if (this.#policy.refreshInCookie) reply.clearCookie(this.#policy.refresh, this.#attributes(this.#policy.refreshPath, undefined))
  }

  #attributes (path: string, maxAgeMs: number | undefined): CookieSerializeOptions {
    const attributes: CookieSerializeOptions = { httpOnly: true, secure: this.#policy.secure, sameSite: 'strict', path }
    if (maxAgeMs !== undefined) attributes.maxAge = Math.floor(maxAgeMs / 1000)
    return attributes
  }
}
