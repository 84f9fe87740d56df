import { parseAlertOptions, type AlertOptions, type AlertPolicy } from './alerts.js'
import { type LocationResolver } from './devices/client.js'
import { createPrivacyPolicy, type PrivacyOptions, type PrivacyPolicy } from './devices/privacy.js'
import { InvalidOptionError } from './errors.js'
import { parseAccessTokenOptions, type AccessTokenOptions, type AccessTokenPolicy } from './http/access-token-source.js'
import { csrfPolicyFor } from './http/csrf.js'
import { parseDpopOptions, type DpopOptions, type DpopPolicy } from './http/dpop.js'
import { COOKIE_OPTION_NAMES, parseCookieOptions, type CookieOptions, type CookiePolicy } from './http/cookies.js'
import { MONITORING_OPTION_NAMES, parseMonitoringOptions, type MonitoringOptions, type MonitoringPolicy } from './http/monitoring-routes.js'
import { parseAdminRoutesOptions, type AdminRoutesOptions, type AdminRoutesPolicy } from './http/admin-routes.js'
import { parseOpenApiOptions, type OpenApiOptions } from './http/route-options.js'
import { parseRoutesOptions, type RoutesOptions, type RoutesPolicy } from './http/routes.js'
import { parseGlobalOptions, type GlobalOptions, type GlobalPolicy, type TokenExtractor } from './guard.js'
import { parseRefreshOptions, type RefreshOptions, type RefreshPolicy } from './lifecycle.js'
import { parseDeviceTypeLimits, type DeviceTypeLimits, type DeviceTypeLimitsOptions } from './limits.js'
import { parseAnomalyOptions, type AnomalyOptions, type AnomalyPolicy } from './monitoring/anomaly.js'
import { parseLoggingOptions, type LoggingOptions, type LoggingPolicy, type SessionEvent } from './monitoring/events.js'
import { parseHistoryOptions, type HistoryOptions, type HistoryPolicy } from './monitoring/history.js'
import { parseTimelineOptions, type TimelineOptions, type TimelinePolicy } from './monitoring/timeline.js'
import { parseLockoutOptions, type LockoutOptions, type LockoutPolicy } from './monitoring/login-attempts.js'
import { parseRememberDeviceOptions, type RememberDeviceOptions, type RememberDevicePolicy } from './remembered-devices.js'
import type { Clock, Lifetime, Lifetimes } from './session.js'
import { memoryStore } from './stores/memory.js'
import type { SessionLimit, SessionStore } from './stores/store.js'
import { parseTokenOptions, TOKEN_OPTION_NAMES, type TokenOptions, type TokenPolicy } from './tokens/jwt.js'
import { duration, optionalFunction, section, shown, type Duration, type OptionNames } from './validate.js'

/**
 * The plugin's options. Every one has a safe default except the signing key.
 * Each feature declares and parses its own options (`TokenOptions` in
 * `tokens/jwt.ts`, `RefreshOptions` in `lifecycle.ts` …); this file holds the
 * core ones and puts the sections together.
 */
export interface SessionGuardOptions extends TokenOptions, CookieOptions, MonitoringOptions {
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
   * Limits per device type, each with its own evict-or-reject choice, under
   * the total `maxSessionsPerUser` (which still applies):
   * `{ mobile: { max: 1, onLimit: 'reject' }, tablet: { max: 1 } }`. At a
   * type's limit, `'evict-oldest'` revokes the least recently active session
   * of that type (never one of another); `'reject'` refuses with a 409 whose
   * ticket offers only the sessions of that type. Types: `desktop`, `mobile`,
   * `tablet`, `bot`, `unknown` (a session whose device is not known).
   * @default {} (the total only)
   */
  deviceTypeLimits?: DeviceTypeLimitsOptions
  /**
   * Where sessions live.
   * @default memoryStore()
   */
  store?: SessionStore
  /**
   * Guard every route in the plugin's scope, except those with `config: { public: true }`,
   * CORS preflights, and the routes `skip` picks (other plugins' routes, such as swagger-ui's).
   * @default false
   */
  global?: boolean | GlobalOptions
  /**
   * Where the guard finds the access token besides `Authorization`, which a
   * browser's `WebSocket` and `EventSource` cannot set: `(request) => token`,
   * or `undefined` to read `Authorization` as usual (as `@fastify/jwt`'s
   * `extractToken`). A route's `config.extractToken` takes precedence. The
   * token is checked as a cookie-carried one is: the CSRF header and an
   * allowed `Origin` on an unsafe method, an allowed `Origin` (when sent) on
   * any. A token in a URL ends up in access logs: see "WebSocket and SSE" in `docs/guard.md`.
   * @default undefined (`Authorization` only)
   */
  extractToken?: TokenExtractor
  /** Refresh tokens. */
  refresh?: RefreshOptions
  /**
   * Where the access token travels: the `Authorization` header, an HttpOnly
   * cookie as well (`'both'`, for server-side rendering), or only the cookie.
   * @default { transport: 'header' }
   */
  accessToken?: AccessTokenOptions
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
  resolveLocation?: LocationResolver
  /**
   * DPoP (RFC 9449) for native apps: a login that carries a `DPoP` proof gets
   * a session bound to the proof's key (`Authorization: DPoP`, a fresh proof
   * on every request, the refresh token in the body); a login without one gets
   * the cookies as before. `true` for the defaults. See docs/deployment.md.
   * @default false
   */
  dpop?: DpopOptions | boolean
  /** Failed-login tracking for `app.sessions.loginAttempts`. */
  lockout?: LockoutOptions
  /** Anomaly rules, each with a policy, and a hook to decide per case. */
  anomalies?: AnomalyOptions
  /**
   * "Remember this device": a signed long-lived cookie, bound to the user, that
   * the `new_device` rule recognises at the device's next sign-in. `true` for
   * the defaults. Asked for per sign-in (`issueSession({ rememberDevice: true })`).
   * @default false
   */
  rememberDevice?: RememberDeviceOptions | boolean
  /**
   * Each user's login history (`app.sessions.history()`): how many entries,
   * for how long; `false` keeps none. On by default when the store keeps a
   * history (the memory, Redis and PostgreSQL stores do).
   * @default { maxEntries: 100, maxAge: '90d' }
   */
  history?: HistoryOptions | false
  /**
   * This instance's time series for dashboards (`app.sessions.timeline()`):
   * sign-ins, failures, lockouts, anomalies and ended sessions per interval,
   * and the store's live sessions sampled once per interval; `false` keeps none.
   * @default { interval: '5m', points: 288 }
   */
  timeline?: TimelineOptions | false
  /**
   * Registers the admin routes of a dashboard (overview, one user, revoke)
   * under `prefix`, behind the app's own `preHandler` (who is an admin is the
   * app's to say): see `AdminRoutesOptions`.
   * @default undefined (no routes)
   */
  admin?: AdminRoutesOptions
  /**
   * "Was this you?": a flagged or challenged sign-in is put to the user's
   * other sessions (`app.sessions.alerts()`, the `GET /alerts` route), and
   * `onAlert` hears of it, to send an e-mail or a push.
   * @default {} (alerts listed, no hook)
   */
  alerts?: AlertOptions
  /**
   * Receives every event (as `app.sessions.events.on('event', …)` does), after
   * the request's own work; a throw is logged, never propagated.
   */
  onEvent?: (event: SessionEvent) => void
  /**
   * How events reach the log: the level of each (`levels: { 'auth.rejected': 'info' }`).
   * @default refusals at debug, lockouts at warn (see `LoggingOptions`)
   */
  logging?: LoggingOptions
  /**
   * Registers the session-management routes (list, revoke one, revoke others,
   * revoke all, resolve a session-limit refusal) under `prefix`.
   * @default undefined (no routes)
   */
  routes?: RoutesOptions
  /** How the plugin's routes describe themselves to `@fastify/swagger`. */
  openapi?: OpenApiOptions
  /**
   * The clock, in epoch ms. Tests inject one to move time forward.
   * @default Date.now
   */
  clock?: Clock
}

/** Every top-level option name: the compiler keeps this in step with `SessionGuardOptions`. */
const OPTION_NAMES: OptionNames<SessionGuardOptions> = {
  ...TOKEN_OPTION_NAMES,
  ...COOKIE_OPTION_NAMES,
  ...MONITORING_OPTION_NAMES,
  idleTimeout: true,
  absoluteTimeout: true,
  remember: true,
  touchInterval: true,
  maxSessionsPerUser: true,
  onSessionLimit: true,
  deviceTypeLimits: true,
  store: true,
  global: true,
  extractToken: true,
  refresh: true,
  accessToken: true,
  dpop: true,
  privacy: true,
  resolveLocation: true,
  lockout: true,
  anomalies: true,
  rememberDevice: true,
  history: true,
  timeline: true,
  admin: true,
  alerts: true,
  onEvent: true,
  logging: true,
  routes: true,
  openapi: true,
  clock: true
}
const REMEMBER_OPTION_NAMES: OptionNames<NonNullable<SessionGuardOptions['remember']>> = { idleTimeout: true, absoluteTimeout: true }

/** The options after validation and defaults; frozen. Each feature's part is its own policy type. */
export interface NormalizedOptions extends MonitoringPolicy {
  readonly tokens: TokenPolicy
  readonly lifetimes: Lifetimes
  readonly touchIntervalMs: number
  readonly limit: SessionLimit
  readonly deviceTypeLimits: DeviceTypeLimits
  readonly store: SessionStore
  readonly global: GlobalPolicy | undefined
  readonly extractToken: TokenExtractor | undefined
  readonly cookies: CookiePolicy
  readonly refresh: RefreshPolicy
  readonly accessToken: AccessTokenPolicy
  /** `undefined` when off. */
  readonly dpop: DpopPolicy | undefined
  readonly routes: RoutesPolicy | undefined
  /** The OpenAPI security scheme of the access token, or `undefined` for none. */
  readonly securityScheme: string | undefined
  readonly lockout: LockoutPolicy
  readonly anomalies: AnomalyPolicy
  /** `undefined` when the option is off. */
  readonly rememberDevice: RememberDevicePolicy | undefined
  readonly history: HistoryPolicy
  readonly timeline: TimelinePolicy
  readonly admin: AdminRoutesPolicy | undefined
  readonly alerts: AlertPolicy
  readonly onEvent: ((event: SessionEvent) => void) | undefined
  readonly logging: LoggingPolicy
  readonly privacy: PrivacyPolicy
  readonly resolveLocation: LocationResolver | undefined
  readonly clock: Clock
}

const DEFAULT_IDLE_TIMEOUT = '30m'
const DEFAULT_ABSOLUTE_TIMEOUT = '12h'
const DEFAULT_REMEMBER_IDLE_TIMEOUT = '14d'
const DEFAULT_REMEMBER_ABSOLUTE_TIMEOUT = '30d'
const DEFAULT_TOUCH_INTERVAL = '1m'
const DEFAULT_MAX_SESSIONS_PER_USER = 15
const STORE_METHODS = ['create', 'get', 'touch', 'rotate', 'replace', 'revoke', 'revokeUser', 'listUser', 'increment', 'counter', 'resetCounter', 'decrement', 'stats', 'close'] as const

/** Validates options and fills in defaults. Throws `FST_SESSION_GUARD_INVALID_OPTION` naming the option. */
export function normalizeOptions (value: SessionGuardOptions): NormalizedOptions {
  const options = section(value, OPTION_NAMES, '')
  const parsedRefresh = parseRefreshOptions(options.refresh)
  const tokens = parseTokenOptions(options)
  const accessToken = parseAccessTokenOptions(options.accessToken)
  const cookies = parseCookieOptions(
    options,
    { name: parsedRefresh.cookie, path: parsedRefresh.path, cookiePath: parsedRefresh.cookiePath, inCookie: parsedRefresh.transport === 'cookie' },
    { name: accessToken.cookie, inCookie: accessToken.transport !== 'header', maxAgeMs: tokens.accessTokenTtlMs }
  )
  const refresh: RefreshPolicy = { ...parsedRefresh, csrf: csrfPolicyFor(parsedRefresh.csrf, cookies.sameSite) }
  const lifetimes = parseLifetimes(options)
  const touchIntervalMs = duration(options.touchInterval ?? DEFAULT_TOUCH_INTERVAL, 'touchInterval', { allowZero: true })
  if (touchIntervalMs >= lifetimes.normal.idleMs) {
    throw new InvalidOptionError('touchInterval', 'must be shorter than idleTimeout')
  }
  const store = parseStore(options.store)
  const limit = parseLimit(options)
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new InvalidOptionError('clock', 'must be a function returning epoch ms')

  return Object.freeze({
    tokens,
    lifetimes,
    touchIntervalMs,
    limit,
    deviceTypeLimits: parseDeviceTypeLimits(options.deviceTypeLimits, limit),
    store,
    global: parseGlobalOptions(options.global),
    extractToken: optionalFunction(options.extractToken, 'extractToken', '(request) => string | undefined'),
    cookies,
    refresh,
    accessToken,
    dpop: parseDpopOptions(options.dpop),
    routes: parseRoutesOptions(options.routes),
    securityScheme: parseOpenApiOptions(options.openapi),
    privacy: createPrivacyPolicy(options.privacy),
    resolveLocation: optionalFunction(options.resolveLocation, 'resolveLocation', '(ip) => location'),
    lockout: parseLockoutOptions(options.lockout),
    anomalies: parseAnomalyOptions(options.anomalies),
    rememberDevice: parseRememberDeviceOptions(options.rememberDevice, cookies),
    history: parseHistoryOptions(options.history, store),
    timeline: parseTimelineOptions(options.timeline),
    admin: parseAdminRoutesOptions(options.admin),
    alerts: parseAlertOptions(options.alerts),
    onEvent: optionalFunction(options.onEvent, 'onEvent', '(event) => void'),
    logging: parseLoggingOptions(options.logging),
    ...parseMonitoringOptions(options),
    clock
  })
}

function parseLifetimes (options: SessionGuardOptions): Lifetimes {
  const normal: Lifetime = {
    idleMs: duration(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT, 'idleTimeout'),
    absoluteMs: duration(options.absoluteTimeout ?? DEFAULT_ABSOLUTE_TIMEOUT, 'absoluteTimeout')
  }
  const remember = section(options.remember, REMEMBER_OPTION_NAMES, 'remember')
  const remembered: Lifetime = {
    idleMs: duration(remember.idleTimeout ?? DEFAULT_REMEMBER_IDLE_TIMEOUT, 'remember.idleTimeout'),
    absoluteMs: duration(remember.absoluteTimeout ?? DEFAULT_REMEMBER_ABSOLUTE_TIMEOUT, 'remember.absoluteTimeout')
  }
  return { normal, remembered }
}

function parseLimit (options: SessionGuardOptions): SessionLimit {
  const max = options.maxSessionsPerUser ?? DEFAULT_MAX_SESSIONS_PER_USER
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidOptionError('maxSessionsPerUser', `must be a positive integer, got ${shown(max)}`)
  }
  const onLimit = options.onSessionLimit ?? 'evict-oldest'
  if (onLimit !== 'evict-oldest' && onLimit !== 'reject') {
    throw new InvalidOptionError('onSessionLimit', `must be 'evict-oldest' or 'reject', got ${shown(onLimit)}`)
  }
  return { max, onLimit }
}

function parseStore (value: SessionStore | undefined): SessionStore {
  const store = value ?? memoryStore()
  for (const method of STORE_METHODS) {
    if (typeof store[method] !== 'function') {
      throw new InvalidOptionError('store', `must implement SessionStore (missing ${method}())`)
    }
  }
  return store
}
