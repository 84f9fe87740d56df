import type { FastifyRequest } from 'fastify'
import { sha256 } from '../crypto.js'
import { LoginLockedError } from '../errors.js'
import { storeCall } from '../stores/fail-closed.js'
import type { Runtime } from '../runtime.js'

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
}

type Scope = 'username' | 'ip'

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
  readonly #runtime: Runtime
  readonly #policy: LockoutPolicy

  constructor (runtime: Runtime, policy: LockoutPolicy) {
    this.#runtime = runtime
    this.#policy = policy
  }

  /** Throws `FST_SESSION_GUARD_LOGIN_LOCKED` (429, with `Retry-After`) while the username or the IP is locked. */
  async check (request: FastifyRequest, username: string): Promise<void> {
    const { store, options, events } = this.#runtime
    const now = options.clock()
    for (const [scope, key] of this.#keys(request, username)) {
      const counter = await storeCall(request.log, () => store.counter(key, now))
      if (counter === undefined) continue
      const retryAfterMs = counter.lastAt + this.#delay(scope, counter.count) - now
      if (retryAfterMs > 0) {
        events.publish(request.log, 'login.locked', now, undefined, { username: normalizeUsername(username), scope, retryAfterMs })
        throw Object.assign(new LoginLockedError(), { headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } })
      }
    }
  }

  /** Records a failed login (wrong password or unknown user: call it for both). */
  async fail (request: FastifyRequest, username: string): Promise<void> {
    const { store, options, events } = this.#runtime
    const now = options.clock()
    let failures = 0
    for (const [scope, key] of this.#keys(request, username)) {
      const counter = await storeCall(request.log, () => store.increment(key, this.#policy.windowMs, now))
      if (scope === 'username') failures = counter.count
    }
    events.publish(request.log, 'login.failed', now, undefined, { username: normalizeUsername(username), failures })
  }

  /** Records a successful login: the username's failures are forgotten (the IP's are not). */
  async succeed (request: FastifyRequest, username: string): Promise<void> {
    const store = this.#runtime.store
    await storeCall(request.log, () => store.resetCounter(this.#keys(request, username)[0][1]))
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
