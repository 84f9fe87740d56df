import { parse as parseDuration } from '@lukeed/ms'
import type { AnomalyHook, AnomalyPolicy } from './monitoring/anomaly.js'
import type { AnomalyDecision, SessionEvent } from './monitoring/events.js'
import type { LockoutPolicy } from './monitoring/login-attempts.js'
import { InvalidOptionError } from './errors.js'
import { createPrivacyPolicy, type PrivacyOptions, type PrivacyPolicy } from './devices/privacy.js'
import type { Clock, Location } from './session.js'
import { memoryStore } from './stores/memory.js'
import type { SessionStore } from './stores/store.js'

/** Milliseconds, or a string such as `'15m'`, `'12h'`, `'30d'`. */
export type Duration = number | string

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512'
export type AsymmetricAlgorithm =
  | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

/** The plugin's options. Every one has a safe default except the signing key. */
export interface SessionGuardOptions {
  /**
   * HMAC secret for access tokens, at least 32 bytes. Give this or `keys`.
   */
  secret?: string | Buffer
  /**
   * PEM key pair for an asymmetric `algorithm`. Give this or `secret`.
   */
  keys?: { private: string | Buffer, public: string | Buffer }
  /**
   * The one algorithm access tokens are signed and verified with. Must be an
   * HMAC algorithm with `secret`, and an asymmetric one with `keys`.
   * @default 'HS256' with `secret`; required with `keys`
   */
  algorithm?: HmacAlgorithm | AsymmetricAlgorithm
  /** `iss` claim to sign, and to require when verifying. */
  issuer?: string
  /** `aud` claim to sign, and to require when verifying. */
  audience?: string
  /**
   * Lifetime of an access token. Keep it short: refresh tokens renew it.
   * @default '15m'
   */
  accessTokenTtl?: Duration
  /**
   * Tolerance for clock skew when checking an access token's `exp`.
   * @default 0
   */
  clockTolerance?: Duration
  /**
   * A session ends after this long without activity (sliding window).
   * @default '30m'
   */
  idleTimeout?: Duration
  /**
   * A session ends this long after login, whatever its activity.
   * @default '12h'
   */
  absoluteTimeout?: Duration
  /** Lifetimes of sessions issued with `remember: true`. */
  remember?: {
    /** @default '14d' */
    idleTimeout?: Duration
    /** @default '30d' */
    absoluteTimeout?: Duration
  }
  /**
   * Activity is written to the store at most once per this interval per session,
   * so a busy client does not cause a write on every request.
   * @default '1m'
   */
  touchInterval?: Duration
  /**
   * Most live sessions per user.
   * @default 15
   */
  maxSessionsPerUser?: number
  /**
   * At the limit, `'evict-oldest'` revokes the user's least recently active
   * session; `'reject'` refuses the new login with a 409.
   * @default 'evict-oldest'
   */
  onSessionLimit?: 'evict-oldest' | 'reject'
  /**
   * Where sessions live.
   * @default memoryStore()
   */
  store?: SessionStore
  /**
   * Guard every route in the plugin's scope, except those with `config: { public: true }`.
   * @default false
   */
  global?: boolean
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
  /** Refresh tokens. */
  refresh?: RefreshOptions
  /**
   * How much of the client the session keeps: the IP (`'full'`, `'truncated'`
   * to /24 and /48, `'hashed'` with `ipSalt`, or `'none'`) and whether the raw
   * User-Agent is kept after parsing.
   * @default { ipMode: 'truncated', keepUserAgent: false }
   */
  privacy?: PrivacyOptions
  /**
   * Resolves a client IP (the full `request.ip`, before the privacy policy
   * reduces it) to a location, e.g. with `@maxmind/geoip2-node`. Called at
   * login and when a session's IP changes. A failure is logged and ignored.
   */
  resolveLocation?: (ip: string) => Location | undefined | Promise<Location | undefined>
  /** Failed-login tracking for `app.sessions.loginAttempts`. */
  lockout?: LockoutOptions
  /** Anomaly rules, each with a policy, and a hook to decide per case. */
  anomalies?: AnomalyOptions
  /**
   * Receives every event (as `app.sessions.events.on('event', …)` does), after
   * the request's own work; a throw is logged, never propagated.
   */
  onEvent?: (event: SessionEvent) => void
  /**
   * Registers a health route: 200 with the store's figures, 503 when the store
   * does not answer within a second or holds more than `maxUtilization` of its capacity.
   * @default undefined (no route)
   */
  health?: { path: string, maxUtilization?: number }
  /**
   * Registers a metrics route in the Prometheus text format. Protect it (a
   * network policy, or `onRequest` on your side) if it must not be public.
   * @default undefined (no route)
   */
  metrics?: { path: string }
  /**
   * Registers the session-management routes (list, revoke one, revoke others,
   * revoke all, resolve a session-limit refusal) under `prefix`.
   * @default undefined (no routes)
   */
  routes?: { prefix: string }
  /**
   * The clock, in epoch ms. Tests inject one to move time forward.
   * @default Date.now
   */
  clock?: Clock
}

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
}

export interface AnomalyOptions {
  /** A login from a device (browser, OS, type, model) the user has not used within `memory`. @default 'flag' */
  newDevice?: AnomalyDecision
  /** A login from a country the user has not logged in from within `memory` (needs `resolveLocation`). @default 'flag' */
  newCountry?: AnomalyDecision
  /** A session's IP changes between requests (mobile networks do this often). @default 'ignore' */
  ipChange?: AnomalyDecision
  /** More distinct IPs across a user's live sessions than `max`. @default { policy: 'flag', max: 10 } */
  tooManyIps?: { policy?: AnomalyDecision, max?: number }
  /** More distinct countries across a user's live sessions than `max`. @default { policy: 'flag', max: 3 } */
  tooManyCountries?: { policy?: AnomalyDecision, max?: number }
  /**
   * Two places (logins or requests, with coordinates) farther apart than
   * `maxSpeedKmh` allows; distances under `minDistanceKm` are geolocation noise.
   * @default { policy: 'flag', maxSpeedKmh: 1000, minDistanceKm: 200 }
   */
  impossibleTravel?: { policy?: AnomalyDecision, maxSpeedKmh?: number, minDistanceKm?: number }
  /** More than `max` logins of one user in a `window`. @default { policy: 'flag', max: 10, window: '1m' } */
  loginBurst?: { policy?: AnomalyDecision, max?: number, window?: Duration }
  /** How long a device or country stays known after a login from it. @default '90d' */
  memory?: Duration
  /** Decides per case; returning `undefined` keeps the rule's policy. */
  decide?: AnomalyHook
}

export interface RefreshOptions {
  /**
   * How the refresh token travels: in its own HttpOnly cookie, or in the
   * response body (for clients that are not browsers).
   * @default 'cookie'
   */
  transport?: 'cookie' | 'body'
  /**
   * Path of the app's refresh route; the refresh cookie is only sent there.
   * @default '/refresh'
   */
  path?: string
  /**
   * Name of the refresh cookie.
   * @default '__Secure-sg-rt' ('sg-rt' when `secureCookies` is false)
   */
  cookie?: string
  /**
   * After a rotation, a second refresh with the same (now previous) token
   * inside this window is answered 409 without revoking anything (parallel
   * tabs). After it, the previous token still works once if its successor was
   * never used (a response lost on the way); any older token revokes the session.
   * @default '10s'
   */
  graceWindow?: Duration
  /**
   * Header a cookie-carried refresh must send; a cross-site form cannot.
   * @default 'x-requested-with'
   */
  csrfHeader?: string
  /**
   * Origins allowed to refresh. A request with an `Origin` header outside this
   * list is refused. Empty: only the request's own origin.
   * @default []
   */
  allowedOrigins?: string[]
}

/** The options after validation and defaults; frozen. */
export interface NormalizedOptions {
  readonly signing: {
    readonly algorithm: HmacAlgorithm | AsymmetricAlgorithm
    readonly signKey: string | Buffer
    readonly verifyKey: string | Buffer
    readonly issuer: string | undefined
    readonly audience: string | undefined
  }
  readonly accessTokenTtlMs: number
  readonly clockToleranceMs: number
  readonly lifetimes: {
    readonly normal: Lifetime
    readonly remembered: Lifetime
  }
  readonly touchIntervalMs: number
  readonly limit: { readonly max: number, readonly onLimit: 'evict-oldest' | 'reject' }
  readonly store: SessionStore
  readonly global: boolean
  readonly cookies: {
    readonly secure: boolean
    readonly fingerprint: string
    readonly refresh: string
  }
  readonly refresh: {
    readonly transport: 'cookie' | 'body'
    readonly path: string
    readonly graceMs: number
    readonly csrfHeader: string
    readonly allowedOrigins: ReadonlySet<string>
  }
  readonly routes: { readonly prefix: string } | undefined
  readonly lockout: LockoutPolicy
  readonly anomalies: AnomalyPolicy
  readonly onEvent: ((event: SessionEvent) => void) | undefined
  readonly health: { readonly path: string, readonly maxUtilization: number } | undefined
  readonly metrics: { readonly path: string } | undefined
  readonly privacy: PrivacyPolicy
  readonly resolveLocation: ((ip: string) => Location | undefined | Promise<Location | undefined>) | undefined
  readonly clock: Clock
}

export interface Lifetime {
  readonly idleMs: number
  readonly absoluteMs: number
}

const DEFAULT_ACCESS_TOKEN_TTL = '15m'
const DEFAULT_IDLE_TIMEOUT = '30m'
const DEFAULT_ABSOLUTE_TIMEOUT = '12h'
const DEFAULT_REMEMBER_IDLE_TIMEOUT = '14d'
const DEFAULT_REMEMBER_ABSOLUTE_TIMEOUT = '30d'
const DEFAULT_TOUCH_INTERVAL = '1m'
const DEFAULT_MAX_SESSIONS_PER_USER = 15
const DEFAULT_GRACE_WINDOW = '10s'
const DEFAULT_CSRF_HEADER = 'x-requested-with'
const DEFAULT_REFRESH_PATH = '/refresh'
const MIN_SECRET_BYTES = 32
const DEFAULT_MAX_UTILIZATION = 0.9
const DECISIONS: ReadonlySet<string> = new Set(['ignore', 'flag', 'revoke'])
const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512'])
const ASYMMETRIC_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])
// RFC 6265bis cookie-name token: no separators, controls or spaces.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

// Every option name, so a misspelt one (`idleTimout`) fails instead of silently leaving a default.
const KNOWN: Record<string, readonly string[]> = {
  '': ['secret', 'keys', 'algorithm', 'issuer', 'audience', 'accessTokenTtl', 'clockTolerance', 'idleTimeout', 'absoluteTimeout',
    'remember', 'touchInterval', 'maxSessionsPerUser', 'onSessionLimit', 'store', 'global', 'fingerprintCookie', 'secureCookies',
    'development', 'refresh', 'privacy', 'resolveLocation', 'lockout', 'anomalies', 'onEvent', 'health', 'metrics', 'routes', 'clock'],
  remember: ['idleTimeout', 'absoluteTimeout'],
  refresh: ['transport', 'path', 'cookie', 'graceWindow', 'csrfHeader', 'allowedOrigins'],
  privacy: ['ipMode', 'ipSalt', 'keepUserAgent'],
  lockout: ['window', 'usernameFreeAttempts', 'ipFreeAttempts', 'baseDelay', 'maxDelay'],
  anomalies: ['newDevice', 'newCountry', 'ipChange', 'tooManyIps', 'tooManyCountries', 'impossibleTravel', 'loginBurst', 'memory', 'decide'],
  health: ['path', 'maxUtilization'],
  metrics: ['path'],
  routes: ['prefix']
}

function rejectUnknown (options: object): void {
  for (const [section, known] of Object.entries(KNOWN)) {
    const value = section === '' ? options : (options as Record<string, unknown>)[section]
    if (typeof value !== 'object' || value === null) continue
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) throw new InvalidOptionError(section === '' ? key : `${section}.${key}`, 'is not an option of fastify-session-guard')
    }
  }
}

/** Validates options and fills in defaults. Throws `FST_SESSION_GUARD_INVALID_OPTION` naming the option. */
export function normalizeOptions (options: SessionGuardOptions): NormalizedOptions {
  rejectUnknown(options)
  const development = options.development === true
  const secure = options.secureCookies === undefined ? true : bool(options.secureCookies, 'secureCookies')
  if (!secure && !development) {
    throw new InvalidOptionError('secureCookies', 'may only be false together with `development: true`')
  }

  const normal: Lifetime = {
    idleMs: duration(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT, 'idleTimeout'),
    absoluteMs: duration(options.absoluteTimeout ?? DEFAULT_ABSOLUTE_TIMEOUT, 'absoluteTimeout')
  }
  const remember = options.remember ?? {}
  const remembered: Lifetime = {
    idleMs: duration(remember.idleTimeout ?? DEFAULT_REMEMBER_IDLE_TIMEOUT, 'remember.idleTimeout'),
    absoluteMs: duration(remember.absoluteTimeout ?? DEFAULT_REMEMBER_ABSOLUTE_TIMEOUT, 'remember.absoluteTimeout')
  }
  const touchIntervalMs = duration(options.touchInterval ?? DEFAULT_TOUCH_INTERVAL, 'touchInterval', { allowZero: true })
  if (touchIntervalMs >= normal.idleMs) {
    throw new InvalidOptionError('touchInterval', 'must be shorter than idleTimeout')
  }

  const max = options.maxSessionsPerUser ?? DEFAULT_MAX_SESSIONS_PER_USER
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidOptionError('maxSessionsPerUser', `must be a positive integer, got ${String(max)}`)
  }
  const onLimit = options.onSessionLimit ?? 'evict-oldest'
  if (onLimit !== 'evict-oldest' && onLimit !== 'reject') {
    throw new InvalidOptionError('onSessionLimit', `must be 'evict-oldest' or 'reject', got ${String(onLimit)}`)
  }

  const refresh = options.refresh ?? {}
  const transport = refresh.transport ?? 'cookie'
  if (transport !== 'cookie' && transport !== 'body') {
    throw new InvalidOptionError('refresh.transport', `must be 'cookie' or 'body', got ${String(transport)}`)
  }
  const path = refresh.path ?? DEFAULT_REFRESH_PATH
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new InvalidOptionError('refresh.path', 'must be a path starting with "/"')
  }
  const csrfHeader = refresh.csrfHeader ?? DEFAULT_CSRF_HEADER
  if (typeof csrfHeader !== 'string' || !COOKIE_NAME.test(csrfHeader)) {
    throw new InvalidOptionError('refresh.csrfHeader', 'must be a header name')
  }
  const allowedOrigins = refresh.allowedOrigins ?? []
  if (!Array.isArray(allowedOrigins) || !allowedOrigins.every((origin) => typeof origin === 'string')) {
    throw new InvalidOptionError('refresh.allowedOrigins', 'must be an array of origins such as "https://app.example.com"')
  }

  const store = options.store ?? memoryStore()
  for (const method of ['create', 'get', 'touch', 'rotate', 'replace', 'revoke', 'revokeUser', 'listUser', 'stats', 'close'] as const) {
    if (typeof store[method] !== 'function') {
      throw new InvalidOptionError('store', `must implement SessionStore (missing ${method}())`)
    }
  }


  const resolveLocation = options.resolveLocation
  if (resolveLocation !== undefined && typeof resolveLocation !== 'function') {
    throw new InvalidOptionError('resolveLocation', 'must be a function (ip) => location')
  }

  const onEvent = options.onEvent
  if (onEvent !== undefined && typeof onEvent !== 'function') throw new InvalidOptionError('onEvent', 'must be a function (event) => void')

  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new InvalidOptionError('clock', 'must be a function returning epoch ms')

  return Object.freeze({
    signing: signing(options),
    accessTokenTtlMs: duration(options.accessTokenTtl ?? DEFAULT_ACCESS_TOKEN_TTL, 'accessTokenTtl'),
    clockToleranceMs: duration(options.clockTolerance ?? 0, 'clockTolerance', { allowZero: true }),
    lifetimes: { normal, remembered },
    touchIntervalMs,
    limit: { max, onLimit },
    store,
    global: options.global === undefined ? false : bool(options.global, 'global'),
    cookies: {
      secure,
      fingerprint: cookieName(options.fingerprintCookie ?? (secure ? '__Host-sg-fp' : 'sg-fp'), 'fingerprintCookie', secure),
      refresh: cookieName(refresh.cookie ?? (secure ? '__Secure-sg-rt' : 'sg-rt'), 'refresh.cookie', secure)
    },
    refresh: {
      transport,
      path,
      graceMs: duration(refresh.graceWindow ?? DEFAULT_GRACE_WINDOW, 'refresh.graceWindow', { allowZero: true }),
      csrfHeader: csrfHeader.toLowerCase(),
      allowedOrigins: new Set(allowedOrigins)
    },
    routes: options.routes === undefined ? undefined : { prefix: routePath(options.routes.prefix, 'routes.prefix') },
    privacy: createPrivacyPolicy(options.privacy),
    resolveLocation,
    lockout: lockout(options.lockout ?? {}),
    anomalies: anomalies(options.anomalies ?? {}),
    onEvent,
    health: options.health === undefined
      ? undefined
      : {
          path: routePath(options.health.path, 'health.path'),
          maxUtilization: fraction(options.health.maxUtilization ?? DEFAULT_MAX_UTILIZATION, 'health.maxUtilization')
        },
    metrics: options.metrics === undefined ? undefined : { path: routePath(options.metrics.path, 'metrics.path') },
    clock
  })
}

function signing (options: SessionGuardOptions): NormalizedOptions['signing'] {
  const { secret, keys, issuer, audience } = options
  if (issuer !== undefined && (typeof issuer !== 'string' || issuer === '')) {
    throw new InvalidOptionError('issuer', 'must be a non-empty string')
  }
  if (audience !== undefined && (typeof audience !== 'string' || audience === '')) {
    throw new InvalidOptionError('audience', 'must be a non-empty string')
  }
  if (secret !== undefined && keys !== undefined) {
    throw new InvalidOptionError('secret', 'give either `secret` or `keys`, not both')
  }
  if (keys !== undefined) {
    const algorithm = options.algorithm
    if (algorithm === undefined || !ASYMMETRIC_ALGORITHMS.has(algorithm)) {
      throw new InvalidOptionError('algorithm', `must name the asymmetric algorithm of \`keys\` (${[...ASYMMETRIC_ALGORITHMS].join(', ')})`)
    }
    if (typeof keys !== 'object' || keys === null || !isKey(keys.private) || !isKey(keys.public)) {
      throw new InvalidOptionError('keys', 'must hold non-empty PEM `private` and `public` keys')
    }
    return { algorithm, signKey: keys.private, verifyKey: keys.public, issuer, audience }
  }
  if (secret === undefined) {
    throw new InvalidOptionError('secret', 'is required (or `keys` with an asymmetric `algorithm`)')
  }
  if (!isKey(secret) || Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    throw new InvalidOptionError('secret', `must be a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
  }
  if (looksLikeKey(secret)) {
    // An HMAC keyed with a public key lets anyone who has that key sign tokens.
    throw new InvalidOptionError('secret', 'looks like a PEM or JWK key: give key pairs as `keys` with an asymmetric `algorithm`')
  }
  const algorithm = options.algorithm ?? 'HS256'
  if (!HMAC_ALGORITHMS.has(algorithm)) {
    throw new InvalidOptionError('algorithm', 'must be HS256, HS384 or HS512 with `secret`')
  }
  return { algorithm, signKey: secret, verifyKey: secret, issuer, audience }
}

/** A PEM block (key or certificate) or a JWK, as text. */
function looksLikeKey (secret: string | Buffer): boolean {
  const text = Buffer.isBuffer(secret) ? secret.toString('latin1') : secret
  return text.includes('-----BEGIN') || /^\s*\{[\s\S]*"kty"/.test(text)
}

function isKey (value: unknown): value is string | Buffer {
  return (typeof value === 'string' || Buffer.isBuffer(value)) && value.length > 0
}

function duration (value: Duration, name: string, { allowZero = false } = {}): number {
  const ms = typeof value === 'string' ? parseDuration(value) : value
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || (ms === 0 && !allowZero)) {
    throw new InvalidOptionError(name, `must be a ${allowZero ? 'non-negative' : 'positive'} duration in ms or a string such as '15m', got ${String(value)}`)
  }
  return ms
}

function bool (value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'must be a boolean')
  return value
}

function cookieName (name: string, option: string, secure: boolean): string {
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    throw new InvalidOptionError(option, 'must be a valid cookie name')
  }
  if (!secure && /^__(host|secure)-/i.test(name)) {
    throw new InvalidOptionError(option, 'a __Host- or __Secure- name needs secure cookies')
  }
  return name
}

function lockout (options: LockoutOptions): LockoutPolicy {
  const baseDelayMs = duration(options.baseDelay ?? '1s', 'lockout.baseDelay')
  const maxDelayMs = duration(options.maxDelay ?? '15m', 'lockout.maxDelay')
  if (maxDelayMs < baseDelayMs) throw new InvalidOptionError('lockout.maxDelay', 'must not be shorter than lockout.baseDelay')
  return {
    windowMs: duration(options.window ?? '15m', 'lockout.window'),
    usernameFreeAttempts: count(options.usernameFreeAttempts ?? 5, 'lockout.usernameFreeAttempts'),
    ipFreeAttempts: count(options.ipFreeAttempts ?? 20, 'lockout.ipFreeAttempts'),
    baseDelayMs,
    maxDelayMs
  }
}

function anomalies (options: AnomalyOptions): AnomalyPolicy {
  const { tooManyIps = {}, tooManyCountries = {}, impossibleTravel = {}, loginBurst = {}, decide } = options
  if (decide !== undefined && typeof decide !== 'function') throw new InvalidOptionError('anomalies.decide', 'must be a function')
  return {
    newDevice: decision(options.newDevice ?? 'flag', 'anomalies.newDevice'),
    newCountry: decision(options.newCountry ?? 'flag', 'anomalies.newCountry'),
    ipChange: decision(options.ipChange ?? 'ignore', 'anomalies.ipChange'),
    tooManyIps: { policy: decision(tooManyIps.policy ?? 'flag', 'anomalies.tooManyIps.policy'), max: count(tooManyIps.max ?? 10, 'anomalies.tooManyIps.max') },
    tooManyCountries: {
      policy: decision(tooManyCountries.policy ?? 'flag', 'anomalies.tooManyCountries.policy'),
      max: count(tooManyCountries.max ?? 3, 'anomalies.tooManyCountries.max')
    },
    impossibleTravel: {
      policy: decision(impossibleTravel.policy ?? 'flag', 'anomalies.impossibleTravel.policy'),
      maxSpeedKmh: count(impossibleTravel.maxSpeedKmh ?? 1000, 'anomalies.impossibleTravel.maxSpeedKmh'),
      minDistanceKm: count(impossibleTravel.minDistanceKm ?? 200, 'anomalies.impossibleTravel.minDistanceKm')
    },
    loginBurst: {
      policy: decision(loginBurst.policy ?? 'flag', 'anomalies.loginBurst.policy'),
      max: count(loginBurst.max ?? 10, 'anomalies.loginBurst.max'),
      windowMs: duration(loginBurst.window ?? '1m', 'anomalies.loginBurst.window')
    },
    memoryMs: duration(options.memory ?? '90d', 'anomalies.memory'),
    decide
  }
}

function decision (value: unknown, name: string): AnomalyDecision {
  if (typeof value !== 'string' || !DECISIONS.has(value)) throw new InvalidOptionError(name, "must be 'ignore', 'flag' or 'revoke'")
  return value as AnomalyDecision
}

function count (value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new InvalidOptionError(name, 'must be a positive integer')
  return value as number
}

function fraction (value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new InvalidOptionError(name, 'must be a number in (0, 1]')
  return value
}

function routePath (value: unknown, name: string): string {
  if (typeof value !== 'string' || !value.startsWith('/')) throw new InvalidOptionError(name, 'must be a path starting with "/"')
  return value
}
