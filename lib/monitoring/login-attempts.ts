import type { FastifyRequest } from 'fastify'
import ipaddr from 'ipaddr.js'
import type { KeyOf } from '../crypto.js'
import { InvalidOptionError, LoginLockedError } from '../errors.js'
import type { ClientInfo, Clock } from '../session.js'
import type { Counter, SessionStore } from '../stores/store.js'
import { bool, count, duration, section, type Duration, type OptionNames } from '../validate.js'
import type { EventSubject, SessionEventStream } from './events.js'

export interface LockoutOptions {
  /** Failures are forgotten this long after the last one. @default '15m' */
  window?: Duration
  /** Failures per username before the back-off starts. @default 5 */
  usernameFreeAttempts?: number
  /** Failures per client network (any username) before the back-off starts. @default 20 */
  ipFreeAttempts?: number
  /** First lockout; each further failure doubles it. @default '1s' */
  baseDelay?: Duration
  /** Longest lockout. @default '15m' */
  maxDelay?: Duration
  /**
   * The IP scope counts an IPv6 client by its network of this many bits: one
   * subscriber is usually given a whole /64, and every address in it. IPv4
   * clients (IPv4-mapped IPv6 addresses included) are counted by their address.
   * @default 64
   */
  ipv6Prefix?: number
  /**
   * Put the username (normalised) in clear in `login.failed` and `login.locked`
   * events and their log lines, besides its keyed hash. @default false
   */
  logUsernames?: boolean
}

const LOCKOUT_OPTION_NAMES: OptionNames<LockoutOptions> = {
  window: true, usernameFreeAttempts: true, ipFreeAttempts: true, baseDelay: true, maxDelay: true, ipv6Prefix: true, logUsernames: true
}

/** Failed-login tracking, after validation. */
export interface LockoutPolicy {
  /** Failures are forgotten this long after the last one. */
  readonly windowMs: number
  /** Failures per username before the back-off starts. */
  readonly usernameFreeAttempts: number
  /** Failures per client network (any username) before the back-off starts. */
  readonly ipFreeAttempts: number
  /** Lockout after the first failure past the free ones; it doubles with each further failure. */
  readonly baseDelayMs: number
  /** The longest lockout. */
  readonly maxDelayMs: number
  /** Bits of an IPv6 address that name the client's network. */
  readonly ipv6Prefix: number
  /** Whether events and logs carry the username in clear. */
  readonly logUsernames: boolean
}

type Scope = 'username' | 'ip'

export function parseLockoutOptions (value: LockoutOptions | undefined): LockoutPolicy {
  const options = section(value, LOCKOUT_OPTION_NAMES, 'lockout')
  const baseDelayMs = duration(options.baseDelay ?? '1s', 'lockout.baseDelay')
  const maxDelayMs = duration(options.maxDelay ?? '15m', 'lockout.maxDelay')
  if (maxDelayMs < baseDelayMs) throw new InvalidOptionError('lockout.maxDelay', 'must not be shorter than lockout.baseDelay')
  const ipv6Prefix = options.ipv6Prefix ?? 64
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 1 || ipv6Prefix > 128) {
    throw new InvalidOptionError('lockout.ipv6Prefix', 'must be an integer from 1 to 128')
  }
  return {
    windowMs: duration(options.window ?? '15m', 'lockout.window'),
    usernameFreeAttempts: count(options.usernameFreeAttempts ?? 5, 'lockout.usernameFreeAttempts'),
    ipFreeAttempts: count(options.ipFreeAttempts ?? 20, 'lockout.ipFreeAttempts'),
    baseDelayMs,
    maxDelayMs,
    ipv6Prefix,
    logUsernames: options.logUsernames === undefined ? false : bool(options.logUsernames, 'lockout.logUsernames')
  }
}

/** What the lockout works with. */
export interface LoginAttemptsContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly clock: Clock
  /** Names the counters' keys. */
  readonly keyOf: KeyOf
  /** Whether attempts are counted by the client's network too: not with `privacy.ipMode: 'none'`. */
  readonly byIp: boolean
  /** The client of a request as a session would record it: for the user's history, when the app names the user. */
  readonly describe: (request: FastifyRequest) => Promise<ClientInfo>
}

/** A scope and the store key of its counter. */
/** What an app may add to `check()` and `fail()`. */
export interface AttemptOptions {
  /**
   * The user the username belongs to, when there is one: the failure or
   * lockout then appears in that user's login history (`app.sessions.history()`).
   */
  userId?: string
}

type ScopedKey = readonly [Scope, string]
/** The username's key, then the others. */
type ScopedKeys = readonly [ScopedKey, ...ScopedKey[]]

/** An attempt `check()` counted before its password was checked, until `fail()` or `succeed()` settles it. */
interface Reservation {
  /** The normalised username it was counted under. */
  readonly username: string
  readonly keys: ScopedKeys
  /** The username's count with this attempt. */
  readonly failures: number
}

/**
 * `app.sessions.loginAttempts`: what an app's login route calls around its
 * password check. Counters are kept by normalised username and by client
 * network in the session store, so every instance sharing a store shares them.
 *
 * ```ts
 * await app.sessions.loginAttempts.check(request, username)   // 429 + Retry-After when locked
 * const user = await checkPassword(username, password)
 * if (!user) { await app.sessions.loginAttempts.fail(request, username); throw … }
 * await app.sessions.loginAttempts.succeed(request, username)
 * ```
 *
 * `check()` counts the attempt as a failure before the password is checked
 * (a reservation): however many attempts arrive at once, no more of them reach
 * the password check than the policy allows one after another. `fail()`
 * confirms the reservation, `succeed()` takes it back (and forgets the
 * username's failures); one settled by neither stays a failure.
 */
export class LoginAttempts {
  readonly #context: LoginAttemptsContext
  readonly #policy: LockoutPolicy
  readonly #reservations = new WeakMap<FastifyRequest, Reservation>()

  constructor (context: LoginAttemptsContext, policy: LockoutPolicy) {
    this.#context = context
    this.#policy = policy
  }

  /**
   * Throws `FST_SESSION_GUARD_LOGIN_LOCKED` (429, with `Retry-After`) while the
   * username or the IP is locked; otherwise counts the attempt, ahead of its outcome.
   */
  async check (request: FastifyRequest, username: string, options: AttemptOptions = {}): Promise<void> {
    const { store, clock } = this.#context
    const now = clock()
    const keys = this.#keys(request, username)
    const held = await Promise.all(keys.map(async ([, key]) => await store.counter(key, now)))
    for (const [i, [scope]] of keys.entries()) {
      const counter = held[i]
      // Under the free attempts there is no lockout, however recent the last failure: a parallel attempt
      // that read the clock after this one may have stamped `lastAt` past this one's `now`.
      const delay = counter === undefined ? 0 : this.#delay(scope, counter.count)
      const retryAfterMs = delay === 0 ? 0 : (counter as Counter).lastAt + delay - now
      if (retryAfterMs > 0) throw await this.#locked(request, username, options, scope, retryAfterMs, now)
    }
    // Not locked: count the attempt now, one atomic step per scope, sent together (one round trip).
    const counted = await Promise.all(keys.map(async ([scope, key], i) => {
      const counter = await store.increment(key, this.#policy.windowMs, now)
      return { scope, counter, before: held[i]?.count ?? 0, admitted: this.#admits(scope, held[i], counter) }
    }))
    const refused = counted.find(({ admitted }) => !admitted)
    if (refused !== undefined) {
      // Attempts counted since the read above, just now, spent what was left: this one does not count,
      // and waits for the lockout those leave (the free ones, or the one next after the read).
      await Promise.all(keys.map(async ([, key]) => await store.decrement(key, now)))
      const { scope, before } = refused
      throw await this.#locked(request, username, options, scope, this.#delay(scope, Math.max(before + 1, this.#free(scope))), now)
    }
    this.#reservations.set(request, { username: normalizeUsername(username), keys, failures: (counted[0] as { counter: Counter }).counter.count })
  }

  /** Records a failed login (wrong password or unknown user: call it for both). */
  async fail (request: FastifyRequest, username: string, options: AttemptOptions = {}): Promise<void> {
    const { store, events, clock } = this.#context
    const now = clock()
    let failures = this.#settle(request, username)?.failures
    if (failures === undefined) {
      // No attempt of this request was counted by check(): count the failure now.
      const counted = await Promise.all(this.#keys(request, username).map(async ([, key]) => await store.increment(key, this.#policy.windowMs, now)))
      failures = (counted[0] as Counter).count
    }
    events.publish(request.log, 'login.failed', now, await this.#subject(request, options), { ...this.#named(username), failures })
  }

  /** Records a successful login: the username's failures are forgotten, the IP's stay (this attempt is not one of them). */
  async succeed (request: FastifyRequest, username: string): Promise<void> {
    const { store, clock } = this.#context
    const reservation = this.#settle(request, username)
    const [[, usernameKey], ...others] = reservation?.keys ?? this.#keys(request, username)
    const now = clock()
    await Promise.all([
      store.resetCounter(usernameKey),
      ...(reservation === undefined ? [] : others.map(async ([, key]) => await store.decrement(key, now)))
    ])
  }

  /**
   * Whether the attempt counted as `counted` may go ahead, given the counter
   * `held` that `check()` read and found unlocked. Yes when it is the very next
   * one after that read (same counter, nothing counted in between); otherwise
   * other attempts were counted in between, just now, and it may go ahead only
   * if the one before it leaves no lockout.
   */
  #admits (scope: Scope, held: Counter | undefined, counted: Counter): boolean {
    if (held === undefined ? counted.count === 1 : counted.count === held.count + 1 && counted.firstAt === held.firstAt) return true
    return this.#delay(scope, counted.count - 1) === 0
  }

  /** Publishes `login.locked` and gives the 429 (with `Retry-After`) to throw. */
  async #locked (request: FastifyRequest, username: string, options: AttemptOptions, scope: Scope, retryAfterMs: number, now: number): Promise<Error> {
    this.#context.events.publish(request.log, 'login.locked', now, await this.#subject(request, options), { ...this.#named(username), scope, retryAfterMs })
    return Object.assign(new LoginLockedError(), { headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) } })
  }

  /** Whom an event of this attempt is about: the user the app named, seen from the request's client; else no one. */
  async #subject (request: FastifyRequest, { userId }: AttemptOptions): Promise<EventSubject | undefined> {
    if (userId === undefined) return undefined
    return { ...await this.#context.describe(request), userId }
  }

  /** The request's reservation for `username`, taken out: settled once. */
  #settle (request: FastifyRequest, username: string): Reservation | undefined {
    const reservation = this.#reservations.get(request)
    if (reservation === undefined || reservation.username !== normalizeUsername(username)) return undefined
    this.#reservations.delete(request)
    return reservation
  }

  /**
   * What an event (and so the log) says about a username: its keyed name
   * (`keyOf`, under a purpose of its own, so it differs from the store key), 16 characters. It correlates one username's
   * events, and unlike a plain hash it cannot be reversed by hashing a list of
   * likely usernames without the key. (Only for events: the store's keys are
   * `#keys`.) The username itself only with `lockout.logUsernames`.
   */
  #named (username: string): { usernameHash: string, username?: string } {
    const normalized = normalizeUsername(username)
    const usernameHash = this.#context.keyOf('event.username', normalized).slice(0, 16)
    return this.#policy.logUsernames ? { usernameHash, username: normalized } : { usernameHash }
  }

  /** How long a scope is locked after its `count`-th failure. */
  #delay (scope: Scope, count: number): number {
    const free = this.#free(scope)
    if (count < free) return 0
    return Math.min(this.#policy.maxDelayMs, this.#policy.baseDelayMs * 2 ** (count - free))
  }

  #free (scope: Scope): number {
    return scope === 'username' ? this.#policy.usernameFreeAttempts : this.#policy.ipFreeAttempts
  }

  /** The username's key first; the IP's when the request has one and the privacy policy allows it. */
  #keys (request: FastifyRequest, username: string): ScopedKeys {
    const { keyOf, byIp } = this.#context
    const usernameKey: ScopedKey = ['username', `login:u:${keyOf('login.username', normalizeUsername(username))}`]
    const network = byIp ? clientNetwork(request.ip, this.#policy.ipv6Prefix) : undefined
    return network === undefined ? [usernameKey] : [usernameKey, ['ip', `login:ip:${keyOf('login.network', network)}`]]
  }
}

/**
 * The network a client's failures are counted under: an IPv4 address as
 * itself (an IPv4-mapped IPv6 one too: it is the same client seen through a
 * dual-stack socket), an IPv6 address as its `/ipv6Prefix` network, in one
 * canonical spelling each. Anything else a proxy header may carry is counted
 * as it is; no address at all (a Unix socket without a proxy) is `undefined`.
 */
function clientNetwork (ip: string | undefined, ipv6Prefix: number): string | undefined {
  if (ip === undefined) return undefined
  if (!ipaddr.isValid(ip)) return ip
  const address = ipaddr.process(ip)
  if (address.kind() === 'ipv4') return address.toString()
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${ipv6Prefix}`).toString()}/${ipv6Prefix}`
}

/** The form a username is counted under: `' Alice '` and `'alice'` are one user. */
export function normalizeUsername (username: string): string {
  return String(username).normalize('NFKC').trim().toLowerCase()
}
