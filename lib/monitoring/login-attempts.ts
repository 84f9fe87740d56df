import { hkdfSync } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { hmac, sha256 } from '../crypto.js'
import { InvalidOptionError, LoginLockedError } from '../errors.js'
import type { Clock } from '../session.js'
import type { SessionStore } from '../stores/store.js'
import { bool, count, duration, section, type Duration, type OptionNames } from '../validate.js'
import type { SessionEventStream } from './events.js'

export interface LockoutOptions {
  /** Failures are forgotten this long after the last one. @default '15m' */
  window?: Duration
  /** Failures per username before the back-off starts. @default 5 */
  usernameFreeAttempts?: number
  /** Failures per IP (any username) before the back-off starts. @default 20 */
  ipFreeAttempts?: number
  /** First lockout; each further failure doubles it. @default '1s' */
  baseDelay?: Duration
  /** Longest lockout. @default '15m' */
  maxDelay?: Duration
  /**
   * Put the username (normalised) in clear in `login.failed` and `login.locked`
   * events and their log lines, besides its keyed hash. @default false
   */
  logUsernames?: boolean
}

const LOCKOUT_OPTION_NAMES: OptionNames<LockoutOptions> = {
  window: true, usernameFreeAttempts: true, ipFreeAttempts: true, baseDelay: true, maxDelay: true, logUsernames: true
}

/** Failed-login tracking, after validation. */
export interface LockoutPolicy {
  /** Failures are forgotten this long after the last one. */
  readonly windowMs: number
  /** Failures per username before the back-off starts. */
  readonly usernameFreeAttempts: number
  /** Failures per IP (any username) before the back-off starts. */
  readonly ipFreeAttempts: number
  /** Lockout after the first failure past the free ones; it doubles with each further failure. */
  readonly baseDelayMs: number
  /** The longest lockout. */
  readonly maxDelayMs: number
  /** Whether events and logs carry the username in clear. */
  readonly logUsernames: boolean
}

type Scope = 'username' | 'ip'

export function parseLockoutOptions (value: LockoutOptions | undefined): LockoutPolicy {
  const options = section(value, LOCKOUT_OPTION_NAMES, 'lockout')
  const baseDelayMs = duration(options.baseDelay ?? '1s', 'lockout.baseDelay')
  const maxDelayMs = duration(options.maxDelay ?? '15m', 'lockout.maxDelay')
  if (maxDelayMs < baseDelayMs) throw new InvalidOptionError('lockout.maxDelay', 'must not be shorter than lockout.baseDelay')
  return {
    windowMs: duration(options.window ?? '15m', 'lockout.window'),
    usernameFreeAttempts: count(options.usernameFreeAttempts ?? 5, 'lockout.usernameFreeAttempts'),
    ipFreeAttempts: count(options.ipFreeAttempts ?? 20, 'lockout.ipFreeAttempts'),
    baseDelayMs,
    maxDelayMs,
    logUsernames: options.logUsernames === undefined ? false : bool(options.logUsernames, 'lockout.logUsernames')
  }
}

/** What the lockout works with. */
export interface LoginAttemptsContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly clock: Clock
  /** The signing key, from which the key of the hash that stands for a username in events is derived. */
  readonly keyMaterial: string | Buffer
}

/**
 * `app.sessions.loginAttempts`: what an app's login route calls around its
 * password check. Counters are kept by normalised username and by IP in the
 * session store, so every instance sharing a store shares them.
 *
 * ```ts
 * await app.sessions.loginAttempts.check(request, username)   // 429 + Retry-After when locked
 * const user = await checkPassword(username, password)
 * if (!user) { await app.sessions.loginAttempts.fail(request, username); throw … }
 * await app.sessions.loginAttempts.succeed(request, username)
 * ```
 */
export class LoginAttempts {
  readonly #context: LoginAttemptsContext
  readonly #policy: LockoutPolicy
  readonly #usernameKey: Buffer

  constructor (context: LoginAttemptsContext, policy: LockoutPolicy) {
    this.#context = context
    this.#policy = policy
    this.#usernameKey = Buffer.from(hkdfSync('sha256', context.keyMaterial, '', 'fastify-session-guard username in events', 32))
  }

  /** Throws `FST_SESSION_GUARD_LOGIN_LOCKED` (429, with `Retry-After`) while the username or the IP is locked. */
  async check (request: FastifyRequest, username: string): Promise<void> {
    const { store, events, clock } = this.#context
    const now = clock()
    for (const [scope, key] of this.#keys(request, username)) {
      const counter = await store.counter(key, now)
      if (counter === undefined) continue
      const retryAfterMs = counter.lastAt + this.#delay(scope, counter.count) - now
      if (retryAfterMs > 0) {
        events.publish(request.log, 'login.locked', now, undefined, { ...this.#named(username), scope, retryAfterMs })
        throw Object.assign(new LoginLockedError(), { headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } })
      }
    }
  }

  /** Records a failed login (wrong password or unknown user: call it for both). */
  async fail (request: FastifyRequest, username: string): Promise<void> {
    const { store, events, clock } = this.#context
    const now = clock()
    let failures = 0
    for (const [scope, key] of this.#keys(request, username)) {
      const counter = await store.increment(key, this.#policy.windowMs, now)
      if (scope === 'username') failures = counter.count
    }
    events.publish(request.log, 'login.failed', now, undefined, { ...this.#named(username), failures })
  }

  /** Records a successful login: the username's failures are forgotten (the IP's are not). */
  async succeed (request: FastifyRequest, username: string): Promise<void> {
    await this.#context.store.resetCounter(this.#keys(request, username)[0][1])
  }

  /**
   * What an event (and so the log) says about a username: an HMAC under a key
   * derived from the signing key, 16 characters. It correlates one username's
   * events, and unlike a plain hash it cannot be reversed by hashing a list of
   * likely usernames without the key. (Only for events: the store's keys are
   * `#keys`.) The username itself only with `lockout.logUsernames`.
   */
  #named (username: string): { usernameHash: string, username?: string } {
    const normalized = normalizeUsername(username)
    const usernameHash = hmac(this.#usernameKey, normalized).slice(0, 16)
    return this.#policy.logUsernames ? { usernameHash, username: normalized } : { usernameHash }
  }

  /** How long a scope is locked after its `count`-th failure. */
  #delay (scope: Scope, count: number): number {
    const free = scope === 'username' ? this.#policy.usernameFreeAttempts : this.#policy.ipFreeAttempts
    if (count < free) return 0
    return Math.min(this.#policy.maxDelayMs, this.#policy.baseDelayMs * 2 ** (count - free))
  }

  #keys (request: FastifyRequest, username: string): [[Scope, string], [Scope, string]] {
    // Hashed: store keys never hold a username or an address in clear.
    return [
      ['username', `login:u:${sha256(normalizeUsername(username))}`],
      ['ip', `login:ip:${sha256(request.ip)}`]
    ]
  }
}

/** The form a username is counted under: `' Alice '` and `'alice'` are one user. */
export function normalizeUsername (username: string): string {
  return String(username).normalize('NFKC').trim().toLowerCase()
}
