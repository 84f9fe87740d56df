import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ActivityObserver } from './activity.js'
import { alertNotifier, SignInAlerts } from './alerts.js'
import { ClientObserver } from './devices/client.js'
import { createKeyOf } from './crypto.js'
import { AlreadyRegisteredError, NoSessionError } from './errors.js'
import { adminRoutes } from './http/admin-routes.js'
import { createTokenSource } from './http/access-token-source.js'
import { SessionCookies } from './http/cookies.js'
import { DpopProofs } from './http/dpop.js'
import { monitoringRoutes, storeStats } from './http/monitoring-routes.js'
import { sessionRoutes } from './http/routes.js'
import { createGuard, globalGuard } from './guard.js'
import { Lifecycle } from './lifecycle.js'
import { SessionManager } from './manager.js'
import { AnomalyDetector } from './monitoring/anomaly.js'
import { SessionEventStream } from './monitoring/events.js'
import { LoginHistory } from './monitoring/history.js'
import { LoginAttempts } from './monitoring/login-attempts.js'
import { SessionMetrics } from './monitoring/metrics.js'
import { loadPromClient, PrometheusMetrics } from './monitoring/prometheus.js'
import { Timeline } from './monitoring/timeline.js'
import { instrumentGuard, loadTracer } from './monitoring/tracing.js'
import { normalizeOptions, type SessionGuardOptions } from './options.js'
import { RememberedDevices, requireDevices, type CompleteChallengeOptions } from './remembered-devices.js'
import { expiryReason } from './session.js'
import { FailClosedStore } from './stores/fail-closed.js'
import { AccessTokens } from './tokens/access-tokens.js'
import { SessionWatches, type WatchSessionOptions } from './watch.js'
import { DeviceTokens } from './tokens/device-tokens.js'
import { TokenKeys } from './tokens/jwt.js'
import { LimitTickets } from './tokens/limit-tickets.js'
import { RefreshTokens } from './tokens/refresh-tokens.js'
import * as augmentModule from './fastify-augment.js'
// The modules the public API below is drawn from.
import * as alertsModule from './alerts.js'
import * as clientModule from './devices/client.js'
import * as deviceModule from './devices/device.js'
import * as privacyModule from './devices/privacy.js'
import * as errorsModule from './errors.js'
import * as cookiesModule from './http/cookies.js'
import * as accessTokenSourceModule from './http/access-token-source.js'
import * as dpopModule from './http/dpop.js'
import * as monitoringRoutesModule from './http/monitoring-routes.js'
import * as routeOptionsModule from './http/route-options.js'
import * as routesModule from './http/routes.js'
import * as viewsModule from './http/views.js'
import * as guardModule from './guard.js'
import * as lifecycleModule from './lifecycle.js'
import * as limitsModule from './limits.js'
import * as managerModule from './manager.js'
import * as adminRoutesModule from './http/admin-routes.js'
import * as analyticsModule from './monitoring/analytics.js'
import * as timelineModule from './monitoring/timeline.js'
import * as anomalyModule from './monitoring/anomaly.js'
import * as eventsModule from './monitoring/events.js'
import * as historyModule from './monitoring/history.js'
import * as loginAttemptsModule from './monitoring/login-attempts.js'
import * as metricsModule from './monitoring/metrics.js'
import * as optionsModule from './options.js'
import * as rememberedDevicesModule from './remembered-devices.js'
import * as sessionModule from './session.js'
import * as memoryModule from './stores/memory.js'
import * as memorySnapshotModule from './stores/memory-snapshot.js'
import * as migrateModule from './stores/migrate.js'
import * as storeLimitModule from './stores/limit.js'
import * as storeModule from './stores/store.js'
import * as accessTokensModule from './tokens/access-tokens.js'
import * as jwtModule from './tokens/jwt.js'
import * as validateModule from './validate.js'
import * as watchModule from './watch.js'

/** How long a client has to resolve a login refused at the session limit. */
const LIMIT_TICKET_TTL_MS = 5 * 60_000

async function sessionGuard (fastify: FastifyInstance, opts: SessionGuardOptions): Promise<void> {
  if (fastify.hasDecorator('sessions')) throw new AlreadyRegisteredError()
  const options = normalizeOptions(opts)
  const { clock, lifetimes } = options
  const jwt = new TokenKeys(options.tokens)

  // The store, wrapped once: every caller below fails closed the same way.
  const store = new FailClosedStore(options.store, fastify.log)
  const metrics = new SessionMetrics()
  // prom-client is loaded only for the `metrics` option; its collectors go in the app's registry when given.
  const prometheus = options.metrics === undefined
    ? undefined
    : new PrometheusMetrics(loadPromClient(), { storeStats: async () => await storeStats(async () => await store.stats(clock())) }, options.metrics)
  if (prometheus !== undefined) fastify.addHook('onClose', async () => prometheus.close())
  const history = new LoginHistory({ store: store.historyStore, clock, log: fastify.log }, options.history)
  const timeline = new Timeline({ clock, stats: async (now) => await store.stats(now), log: fastify.log }, options.timeline)
  const notifyAlert = alertNotifier({ store, clock, log: fastify.log }, options.alerts)
  const events = new SessionEventStream(fastify.log, options.onEvent, (event) => {
    metrics.record(event)
    prometheus?.record(event)
    history.record(event)
    timeline.record(event)
    notifyAlert(event)
  }, options.logging)
  await store.open({
    now: clock,
    log: fastify.log,
    onRemoved (session, reason) {
      if (reason === 'capacity') events.publish(undefined, 'session.evicted', clock(), session, {})
      else events.publish(undefined, 'session.expired', clock(), session, { reason: expiryReason(session, clock()) })
    }
  })
  fastify.addHook('onClose', async () => await store.close())
  timeline.start()
  fastify.addHook('onClose', async () => timeline.stop())

  const accessTokens = new AccessTokens(jwt, options.tokens.accessTokenTtlMs, options.tokens.clockToleranceMs)
  const cookies = new SessionCookies(options.cookies)
  const client = new ClientObserver(options)
  // Store keys named after users and clients are keyed hashes, derived from the MAC key material.
  const keyOf = createKeyOf(options.tokens.keyNames)
  const anomalies = new AnomalyDetector({ store, events, clock, keyOf }, options.anomalies)
  const activity = new ActivityObserver({ client, anomalies, store, events })
  const devices = options.rememberDevice === undefined
    ? undefined
    : new RememberedDevices({ store, events, clock, keyOf, tokens: new DeviceTokens(options.tokens.macKeys) }, options.rememberDevice)
  // DPoP (RFC 9449) for native apps, beside the cookies: chosen per request by the client.
  const dpop = options.dpop === undefined
    ? undefined
    : new DpopProofs({ store, clock, macKey: options.tokens.macKeys[0]!, clockToleranceMs: options.tokens.clockToleranceMs }, options.dpop)
  // Whether any route has its own `config.extractToken` (the guard's routes come after the plugin).
  let routeExtractors = false
  fastify.addHook('onRoute', (route) => { if (route.config?.extractToken !== undefined) routeExtractors = true })
  const guard = instrumentGuard(createGuard({
    store,
    accessTokens,
    events,
    activity,
    lifetimes,
    clock,
    touchIntervalMs: options.touchIntervalMs,
    fingerprintCookie: cookies.fingerprintName,
    csrf: options.refresh.csrf,
    tokenSource: createTokenSource(options.accessToken, cookies.accessName, options.refresh.csrf, options.extractToken, () => routeExtractors),
    dpop
  }), { time: prometheus?.timeGuard.bind(prometheus), tracer: loadTracer() })
  const lifecycle = new Lifecycle({
    store,
    events,
    clock,
    lifetimes,
    limit: options.limit,
    deviceTypeLimits: options.deviceTypeLimits,
    refresh: options.refresh,
    accessTokens,
    refreshTokens: new RefreshTokens(options.tokens.macKeys),
    tickets: new LimitTickets(jwt, LIMIT_TICKET_TTL_MS),
    cookies,
    client,
    anomalies,
    activity,
    devices,
    dpop
  })
  const loginAttempts = new LoginAttempts({
    store, events, clock, keyOf, byIp: options.privacy.ipMode !== 'none', describe: async (request) => await client.describe(request)
  }, options.lockout)
  const alerts = new SignInAlerts({ store, events, anomalies, clock })
  const manager = new SessionManager({ store, events, metrics, loginAttempts, anomalies, history, timeline, alerts, clock, devices })

  const watches = new SessionWatches({ store, clock })
  fastify.addHook('onClose', async () => watches.close())

  fastify.decorate('requireSession', guard)
  fastify.decorate('sessions', manager)
  // `request.user` is not decorated here: @fastify/jwt declares it, and an app
  // may register its own @fastify/jwt after this plugin without a clash.
  fastify.decorateRequest('authSession', null)
  fastify.decorateRequest('endSession', function (this: FastifyRequest, reply: FastifyReply) {
    return lifecycle.end(this, reply)
  })
  fastify.decorateRequest('regenerateSession', function (this: FastifyRequest, reply: FastifyReply, claims?: Record<string, unknown>) {
    return lifecycle.regenerate(this, reply, claims)
  })
  fastify.decorateRequest('completeChallenge', async function (this: FastifyRequest, reply?: FastifyReply, remember?: CompleteChallengeOptions) {
    if (this.authSession === null) throw new NoSessionError()
    const vouched = remember?.rememberDevice === true ? requireDevices(devices, reply) : undefined
    const completed = await anomalies.completeChallenge(this, this.authSession.id)
    if (completed === undefined) return false
    // The rest of this request (a regenerateSession, say) sees the session without its step-up.
    this.authSession = completed
    if (vouched !== undefined) await vouched.devices.rememberVouched(this, vouched.reply, completed)
    return true
  })
  fastify.decorateRequest('watchSession', function (this: FastifyRequest, watch: WatchSessionOptions) {
    return watches.watch(this, watch)
  })
  fastify.decorateReply('issueSession', function (this: FastifyReply, input) {
    return lifecycle.issue(this, input)
  })
  fastify.decorateReply('refreshSession', function (this: FastifyReply) {
    return lifecycle.refresh(this.request, this)
  })

  if (options.routes !== undefined) {
    const { prefix, routeOptions: extras } = options.routes
    await fastify.register(sessionRoutes({ guard, lifecycle, manager, extras, securityScheme: options.securityScheme }), { prefix })
  }
  if (options.admin !== undefined) {
    await fastify.register(adminRoutes({ guard, clock, manager, policy: options.admin, securityScheme: options.securityScheme }), { prefix: options.admin.prefix })
  }
  const metricsRoute = prometheus?.route
  if (options.health !== undefined || metricsRoute !== undefined) {
    await fastify.register(monitoringRoutes({ manager, health: options.health, metrics: metricsRoute, securityScheme: options.securityScheme }))
  }
  if (options.global !== undefined) {
    const { onRequest, preHandler } = globalGuard(guard, options.global)
    fastify.addHook('onRequest', onRequest)
    fastify.addHook('preHandler', preHandler)
  }
}

fp(sessionGuard satisfies FastifyPluginAsync<SessionGuardOptions>, { fastify: '5.x', name: 'fastify-session-guard' })

/**
 * The public API, grouped by concern. `module.exports` is the plugin itself
 * (below), so these hang on it: `import { memoryStore, type SessionRecord }`,
 * `require('fastify-session-guard').memoryStore`. Each line exports a value,
 * a type, or both.
 */
namespace sessionGuard {
  // Options
  export import SessionGuardOptions = optionsModule.SessionGuardOptions
  export import Duration = validateModule.Duration
  export import TokenOptions = jwtModule.TokenOptions
  export import HmacAlgorithm = jwtModule.HmacAlgorithm
  export import AsymmetricAlgorithm = jwtModule.AsymmetricAlgorithm
  export import KeyPair = jwtModule.KeyPair
  export import SigningKeyEntry = jwtModule.SigningKeyEntry
  export import MacKeyEntry = jwtModule.MacKeyEntry
  export import CookieOptions = cookiesModule.CookieOptions
  export import CookieAttributes = cookiesModule.CookieAttributes
  export import RefreshOptions = lifecycleModule.RefreshOptions
  export import AccessTokenOptions = accessTokenSourceModule.AccessTokenOptions
  export import DpopOptions = dpopModule.DpopOptions
  export import DpopAlgorithm = dpopModule.DpopAlgorithm
  export import RoutesOptions = routesModule.RoutesOptions
  export import RouteExtras = routeOptionsModule.RouteExtras
  export import RouteSchemaExtras = routeOptionsModule.RouteSchemaExtras
  export import OpenApiOptions = routeOptionsModule.OpenApiOptions
  export import GlobalOptions = guardModule.GlobalOptions
  export import TokenExtractor = accessTokenSourceModule.TokenExtractor
  export import WatchSessionOptions = watchModule.WatchSessionOptions
  export import SessionWatch = watchModule.SessionWatch
  export import SessionEndReason = watchModule.SessionEndReason
  export import RouteInfo = guardModule.RouteInfo
  export import MonitoringOptions = monitoringRoutesModule.MonitoringOptions
  export import PrivacyOptions = privacyModule.PrivacyOptions
  export import IpMode = privacyModule.IpMode
  export import LocationResolver = clientModule.LocationResolver
  export import AnomalyOptions = anomalyModule.AnomalyOptions
  export import RememberDeviceOptions = rememberedDevicesModule.RememberDeviceOptions
  export import CompleteChallengeOptions = rememberedDevicesModule.CompleteChallengeOptions
  export import LockoutOptions = loginAttemptsModule.LockoutOptions
  export import AttemptOptions = loginAttemptsModule.AttemptOptions
  export import HistoryOptions = historyModule.HistoryOptions
  export import AnalyticsOptions = analyticsModule.AnalyticsOptions
  export import TimelineOptions = timelineModule.TimelineOptions
  export import AdminRoutesOptions = adminRoutesModule.AdminRoutesOptions
  export import AlertOptions = alertsModule.AlertOptions
  export import LoggingOptions = eventsModule.LoggingOptions
  export import LogLevel = eventsModule.LogLevel
  export import DeviceTypeLimitsOptions = limitsModule.DeviceTypeLimitsOptions
  export import DeviceTypeLimitOptions = limitsModule.DeviceTypeLimitOptions

  // Sessions, tokens and the decorators' types
  export import SessionRecord = sessionModule.SessionRecord
  export import RefreshState = sessionModule.RefreshState
  export import Lifetime = sessionModule.Lifetime
  export import Location = sessionModule.Location
  export import Clock = sessionModule.Clock
  export import TravelAnchor = sessionModule.TravelAnchor
  export import IssuedSession = lifecycleModule.IssuedSession
  export import IssueSessionInput = lifecycleModule.IssueSessionInput
  export import AccessClaims = accessTokensModule.AccessClaims
  export import Guard = guardModule.Guard
  // Classes the plugin builds: their types only.
  export type SessionManager = managerModule.SessionManager
  export import SessionStats = managerModule.SessionStats
  export import UserExport = managerModule.UserExport
  export import FastifyJWT = augmentModule.SessionGuardJWT

  // Stores, and the rules a store of your own needs (the Redis store: fastify-session-guard/redis)
  export import memoryStore = memoryModule.memoryStore
  export import MemoryStore = memoryModule.MemoryStore
  export import MemoryStoreOptions = memoryModule.MemoryStoreOptions
  export import SessionStore = storeModule.SessionStore
  export import StoreContext = storeModule.StoreContext
  export import StoreLog = storeModule.StoreLog
  export import StoreStats = storeModule.StoreStats
  export import SessionLimit = storeModule.SessionLimit
  export import DeviceTypeLimit = storeModule.DeviceTypeLimit
  export import planCreate = storeLimitModule.planCreate
  export import CreateResult = storeModule.CreateResult
  export import Rotation = storeModule.Rotation
  export import RotationResult = storeModule.RotationResult
  export import RemovalReason = storeModule.RemovalReason
  export import ImportResult = storeModule.ImportResult
  export import HeldCounter = storeModule.HeldCounter
  export import HistoryRecord = storeModule.HistoryRecord
  export import HistoryEntry = storeModule.HistoryEntry
  export import HistoryRetention = storeModule.HistoryRetention
  export import HistoryQuery = storeModule.HistoryQuery
  export import migrateSessions = migrateModule.migrateSessions
  export import MigrateSessionsOptions = migrateModule.MigrateSessionsOptions
  export import MigrationProgress = migrateModule.MigrationProgress
  export import SnapshotOptions = memorySnapshotModule.SnapshotOptions
  export import Counter = storeModule.Counter
  export import Activity = sessionModule.Activity
  export import ClientInfo = sessionModule.ClientInfo
  export import SessionChanges = sessionModule.SessionChanges
  export import decideRotation = sessionModule.decideRotation
  export import RotationDecision = sessionModule.RotationDecision
  export import rotatedState = sessionModule.rotatedState
  export import withActivity = sessionModule.withActivity
  export import expiresAt = sessionModule.expiresAt
  export import isLive = sessionModule.isLive
  export import supersedes = sessionModule.supersedes
  export import isRemovable = sessionModule.isRemovable
  export import CLOCK_SKEW_ALLOWANCE_MS = sessionModule.CLOCK_SKEW_ALLOWANCE_MS
  export import CHALLENGE_FLAG = sessionModule.CHALLENGE_FLAG
  export import isChallenged = sessionModule.isChallenged
  export import deviceTypeOf = sessionModule.deviceTypeOf

  // Views and devices
  export import toView = viewsModule.toView
  export import SessionView = viewsModule.SessionView
  export import sessionViewSchema = viewsModule.sessionViewSchema
  export import sessionLimitResponseSchema = viewsModule.sessionLimitResponseSchema
  export import historyEntrySchema = viewsModule.historyEntrySchema
  export import parseDevice = deviceModule.parseDevice
  export import createDeviceParser = deviceModule.createDeviceParser
  export import DeviceInfo = deviceModule.DeviceInfo
  export import DeviceParser = deviceModule.DeviceParser
  export import DeviceType = deviceModule.DeviceType

  // Monitoring
  export import SessionEvent = eventsModule.SessionEvent
  export import SessionEventName = eventsModule.SessionEventName
  export import SessionEvents = eventsModule.SessionEvents
  export import EventBase = eventsModule.EventBase
  export import RevocationReason = eventsModule.RevocationReason
  export import AnomalyRule = eventsModule.AnomalyRule
  export import AnomalyDecision = eventsModule.AnomalyDecision
  export import Anomaly = anomalyModule.Anomaly
  export import AnomalyHook = anomalyModule.AnomalyHook
  export type LoginAttempts = loginAttemptsModule.LoginAttempts
  export import EventCounts = metricsModule.EventCounts
  export import MetricsOptions = metricsModule.MetricsOptions
  export import MetricsRegistry = metricsModule.MetricsRegistry
  export import SessionAnalytics = analyticsModule.SessionAnalytics
  export import SessionTimeline = timelineModule.SessionTimeline
  export import TimelinePoint = timelineModule.TimelinePoint
  export import DURATION_BOUNDS_MS = timelineModule.DURATION_BOUNDS_MS
  export import sessionAnalyticsSchema = adminRoutesModule.sessionAnalyticsSchema
  export import sessionTimelineSchema = adminRoutesModule.sessionTimelineSchema
  export import Alert = alertsModule.Alert
  export import AlertAnswer = alertsModule.AlertAnswer
  export import AlertHook = alertsModule.AlertHook
  export import awaitsAnswer = alertsModule.awaitsAnswer

  // Errors (docs/errors.md)
  export import InvalidOptionError = errorsModule.InvalidOptionError
  export import AlreadyRegisteredError = errorsModule.AlreadyRegisteredError
  export import UnauthorizedError = errorsModule.UnauthorizedError
  export import InvalidClaimsError = errorsModule.InvalidClaimsError
  export import SessionLimitError = errorsModule.SessionLimitError
  export import RefreshConflictError = errorsModule.RefreshConflictError
  export import CsrfError = errorsModule.CsrfError
  export import SessionNotFoundError = errorsModule.SessionNotFoundError
  export import LoginLockedError = errorsModule.LoginLockedError
  export import AnomalyError = errorsModule.AnomalyError
  export import StoreFullError = errorsModule.StoreFullError
  export import StoreUnavailableError = errorsModule.StoreUnavailableError
  export import NoSessionError = errorsModule.NoSessionError
  export import SnapshotInvalidError = errorsModule.SnapshotInvalidError
  export import StoreUnsupportedError = errorsModule.StoreUnsupportedError
  export import InvalidHistoryQueryError = errorsModule.InvalidHistoryQueryError
  export import HistoryOffError = errorsModule.HistoryOffError
  export import StepUpRequiredError = errorsModule.StepUpRequiredError
  export import InvalidAlertAnswerError = errorsModule.InvalidAlertAnswerError
  export import UnconfirmedSessionError = errorsModule.UnconfirmedSessionError
  export import InvalidDpopProofError = errorsModule.InvalidDpopProofError
  export import UseDpopNonceError = errorsModule.UseDpopNonceError
  // TypeScript emits `sessionGuard || (sessionGuard = {})` for a namespace merged with a function, and the function always exists.
  /* c8 ignore next */
}
sessionGuard.default = sessionGuard
sessionGuard.sessionGuard = sessionGuard
// fastify-plugin names every plugin this way too (`fastifyCookie`, `fastifyJwt`).
sessionGuard.fastifySessionGuard = sessionGuard

export = sessionGuard

// Node gives an ES module that imports this CommonJS file (`import { memoryStore } from
// 'fastify-session-guard'`) only the names it finds in the file's text written as
// `module.exports.name = …` (cjs-module-lexer), and it does not read the namespace above. So each
// value is named here once more, in the form every @fastify/* plugin uses. The package test
// compares what an ES module imports with what require() gives; the compiler checks each name.
module.exports = sessionGuard
module.exports.default = sessionGuard
module.exports.sessionGuard = sessionGuard
module.exports.fastifySessionGuard = sessionGuard
module.exports.memoryStore = sessionGuard.memoryStore
module.exports.MemoryStore = sessionGuard.MemoryStore
module.exports.decideRotation = sessionGuard.decideRotation
module.exports.rotatedState = sessionGuard.rotatedState
module.exports.withActivity = sessionGuard.withActivity
module.exports.expiresAt = sessionGuard.expiresAt
module.exports.isLive = sessionGuard.isLive
module.exports.supersedes = sessionGuard.supersedes
module.exports.isRemovable = sessionGuard.isRemovable
module.exports.CLOCK_SKEW_ALLOWANCE_MS = sessionGuard.CLOCK_SKEW_ALLOWANCE_MS
module.exports.CHALLENGE_FLAG = sessionGuard.CHALLENGE_FLAG
module.exports.isChallenged = sessionGuard.isChallenged
module.exports.deviceTypeOf = sessionGuard.deviceTypeOf
module.exports.planCreate = sessionGuard.planCreate
module.exports.toView = sessionGuard.toView
module.exports.sessionViewSchema = sessionGuard.sessionViewSchema
module.exports.sessionLimitResponseSchema = sessionGuard.sessionLimitResponseSchema
module.exports.historyEntrySchema = sessionGuard.historyEntrySchema
module.exports.sessionAnalyticsSchema = sessionGuard.sessionAnalyticsSchema
module.exports.sessionTimelineSchema = sessionGuard.sessionTimelineSchema
module.exports.DURATION_BOUNDS_MS = sessionGuard.DURATION_BOUNDS_MS
module.exports.parseDevice = sessionGuard.parseDevice
module.exports.createDeviceParser = sessionGuard.createDeviceParser
module.exports.InvalidOptionError = sessionGuard.InvalidOptionError
module.exports.AlreadyRegisteredError = sessionGuard.AlreadyRegisteredError
module.exports.UnauthorizedError = sessionGuard.UnauthorizedError
module.exports.InvalidClaimsError = sessionGuard.InvalidClaimsError
module.exports.SessionLimitError = sessionGuard.SessionLimitError
module.exports.RefreshConflictError = sessionGuard.RefreshConflictError
module.exports.CsrfError = sessionGuard.CsrfError
module.exports.SessionNotFoundError = sessionGuard.SessionNotFoundError
module.exports.LoginLockedError = sessionGuard.LoginLockedError
module.exports.AnomalyError = sessionGuard.AnomalyError
module.exports.StoreFullError = sessionGuard.StoreFullError
module.exports.StoreUnavailableError = sessionGuard.StoreUnavailableError
module.exports.NoSessionError = sessionGuard.NoSessionError
module.exports.SnapshotInvalidError = sessionGuard.SnapshotInvalidError
module.exports.StoreUnsupportedError = sessionGuard.StoreUnsupportedError
module.exports.InvalidHistoryQueryError = sessionGuard.InvalidHistoryQueryError
module.exports.HistoryOffError = sessionGuard.HistoryOffError
module.exports.StepUpRequiredError = sessionGuard.StepUpRequiredError
module.exports.InvalidAlertAnswerError = sessionGuard.InvalidAlertAnswerError
module.exports.UnconfirmedSessionError = sessionGuard.UnconfirmedSessionError
module.exports.InvalidDpopProofError = sessionGuard.InvalidDpopProofError
module.exports.UseDpopNonceError = sessionGuard.UseDpopNonceError
module.exports.awaitsAnswer = sessionGuard.awaitsAnswer
module.exports.migrateSessions = sessionGuard.migrateSessions
