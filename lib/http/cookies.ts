import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply } from 'fastify'
import type { NormalizedOptions } from '../options.js'
import type { SessionRecord } from '../session.js'

/**
 * Writes and clears the plugin's two cookies: the fingerprint (every path) and
 * the refresh token (only the refresh route). Both are HttpOnly, Secure and
 * SameSite=Strict. A remembered session gets persistent cookies that expire
 * with the session's absolute deadline; any other gets session cookies, which
 * the browser drops when it closes.
 */
export class SessionCookies {
  readonly #secure: boolean
  readonly #names: NormalizedOptions['cookies']
  readonly #refreshPath: string
  readonly #refreshInCookie: boolean

  constructor (options: NormalizedOptions) {
    this.#secure = options.cookies.secure
    this.#names = options.cookies
    this.#refreshPath = options.refresh.path
    this.#refreshInCookie = options.refresh.transport === 'cookie'
  }

  set (reply: FastifyReply, session: SessionRecord, fingerprint: string | undefined, refreshToken: string | undefined, now: number): void {
    const maxAgeMs = session.remembered ? session.absoluteExpiresAt - now : undefined
    if (fingerprint !== undefined) reply.setCookie(this.#names.fingerprint, fingerprint, this.#attributes('/', maxAgeMs))
    if (this.#refreshInCookie && refreshToken !== undefined) {
      reply.setCookie(this.#names.refresh, refreshToken, this.#attributes(this.#refreshPath, maxAgeMs))
    }
  }

  clear (reply: FastifyReply): void {
    reply.clearCookie(this.#names.fingerprint, this.#attributes('/', undefined))
    if (this.#refreshInCookie) reply.clearCookie(this.#names.refresh, this.#attributes(this.#refreshPath, undefined))
  }

  #attributes (path: string, maxAgeMs: number | undefined): CookieSerializeOptions {
    const attributes: CookieSerializeOptions = { httpOnly: true, secure: this.#secure, sameSite: 'strict', path }
    if (maxAgeMs !== undefined) attributes.maxAge = Math.floor(maxAgeMs / 1000)
    return attributes
  }
}
