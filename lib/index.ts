import fastifyCookie from '@fastify/cookie'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ActivityObserver } from './activity.js'
import { ClientObserver } from './devices/client.js'
import { createKeyOf } from './crypto.js'
import { AlreadyRegisteredError } from './errors.js'
import { SessionCookies } from './http/cookies.js'
import { monitoringRoutes } from './http/monitoring-routes.js'
import { sessionRoutes } from './http/routes.js'
import { createGuard } from './guard.js'
import { Lifecycle } from './lifecycle.js'
import { SessionManager } from './manager.js'
import { AnomalyDetector } from './monitoring/anomaly.js'
import { SessionEventStream } from './monitoring/events.js'
import { LoginAttempts } from './monitoring/login-attempts.js'
import { SessionMetrics } from './monitoring/metrics.js'
import { normalizeOptions, type SessionGuardOptions } from './options.js'
import { expiryReason } from './session.js'
import { FailClosedStore } from './stores/fail-closed.js'
import { AccessTokens } from './tokens/access-tokens.js'
import { registerJwt } from './tokens/jwt.js'
import { LimitTickets } from './tokens/limit-tickets.js'
import { RefreshTokens } from './tokens/refresh-tokens.js'
import './fastify-augment.js'

/** How long a client has to resolve a login refused at the session limit. */
const LIMIT_TICKET_TTL_MS = 5 * 60_000

const sessionGuard: FastifyPluginAsync<SessionGuardOptions> = async (fastify, opts) => {
  if (fastify.hasDecorator('sessions')) throw new AlreadyRegisteredError()
  const options = normalizeOptions(opts)
  const { clock, lifetimes } = options
  if (!fastify.hasRequestDecorator('cookies')) await fastify.register(fastifyCookie)
  const jwt = await registerJwt(fastify, options.tokens)

  // The store, wrapped once: every caller below fails closed the same way.
  const store = new FailClosedStore(options.store, fastify.log)
  const metrics = new SessionMetrics()
  const events = new SessionEventStream(fastify.log, options.onEvent, (event) => metrics.record(event))
  await store.open({
    now: clock,
    onRemoved (session, reason) {
      if (reason === 'capacity') events.publish(undefined, 'session.evicted', clock(), session, {})
      else events.publish(undefined, 'session.expired', clock(), session, { reason: expiryReason(session, clock()) })
    }
  })
  fastify.addHook('onClose', async () => await store.close())

  const accessTokens = new AccessTokens(jwt, options.tokens.accessTokenTtlMs, options.tokens.clockToleranceMs)
  const cookies = new SessionCookies(options.cookies)
  const client = new ClientObserver(options)
  // Store keys named after users and clients are keyed hashes, derived from the signing key.
  const keyOf = createKeyOf(options.tokens)
  const anomalies = new AnomalyDetector({ store, events, clock, keyOf }, options.anomalies)
  const activity = new ActivityObserver({ client, anomalies, store, events })
  const guard = createGuard({
    store,
    accessTokens,
    events,
    activity,
    lifetimes,
    clock,
    touchIntervalMs: options.touchIntervalMs,
    fingerprintCookie: cookies.fingerprintName
  })
  const lifecycle = new Lifecycle({
    store,
    events,
    clock,
    lifetimes,
    limit: options.limit,
    refresh: options.refresh,
    accessTokens,
    refreshTokens: new RefreshTokens(options.tokens.signKey),
    tickets: new LimitTickets(jwt, LIMIT_TICKET_TTL_MS),
    cookies,
    client,
    anomalies,
    activity
  })
  const loginAttempts = new LoginAttempts({ store, events, clock, keyOf, byIp: options.privacy.ipMode !== 'none' }, options.lockout)
  const manager = new SessionManager({ store, events, metrics, loginAttempts, anomalies, clock })

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
  fastify.decorateReply('issueSession', function (this: FastifyReply, input) {
    return lifecycle.issue(this, input)
  })
  fastify.decorateReply('refreshSession', function (this: FastifyReply) {
    return lifecycle.refresh(this.request, this)
  })

  if (options.routes !== undefined) {
    await fastify.register(sessionRoutes({ guard, lifecycle, manager }), { prefix: options.routes.prefix })
  }
  if (options.health !== undefined || options.metrics !== undefined) {
    await fastify.register(monitoringRoutes({ manager, health: options.health, metrics: options.metrics }))
  }
  if (options.global) {
    fastify.addHook('onRequest', async (request, reply) => {
      if (request.is404 || request.routeOptions.config.public === true) return
      await guard(request, reply)
    })
  }
}

export default fp(sessionGuard, { fastify: '5.x', name: 'fastify-session-guard' })
export { sessionGuard }
export * from './errors.js'
export { MemoryStore, memoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { RedisStore, redisStore, type RedisStoreOptions } from './stores/redis/index.js'
export type * from './stores/store.js'
export type { Clock, Lifetime, Location, RefreshState, SessionRecord, TravelAnchor } from './session.js'
export { decideRotation, expiresAt, isLive, rotatedState, withActivity, type RotationDecision } from './session.js'
export type { SessionGuardOptions } from './options.js'
export type { Duration } from './validate.js'
export type { AsymmetricAlgorithm, HmacAlgorithm, TokenOptions } from './tokens/jwt.js'
export type { CookieOptions } from './http/cookies.js'
export type { MonitoringOptions } from './http/monitoring-routes.js'
export type { RoutesOptions } from './http/routes.js'
export type { IssuedSession, IssueSessionInput, RefreshOptions } from './lifecycle.js'
export type { SessionManager, SessionStats } from './manager.js'
export type { AccessClaims } from './tokens/access-tokens.js'
export type { Guard } from './guard.js'
export type { Anomaly, AnomalyHook, AnomalyOptions } from './monitoring/anomaly.js'
export type { AnomalyDecision, AnomalyRule, EventBase, RevocationReason, SessionEvent, SessionEventName, SessionEvents } from './monitoring/events.js'
export type { LockoutOptions, LoginAttempts } from './monitoring/login-attempts.js'
export type { EventCounts, PrometheusOptions } from './monitoring/metrics.js'
export type { AnalyticsOptions, SessionAnalytics } from './monitoring/analytics.js'
export { sessionLimitResponseSchema, sessionViewSchema, toView, type SessionView } from './http/views.js'
export { createDeviceParser, parseDevice, type DeviceInfo, type DeviceParser, type DeviceType } from './devices/device.js'
export type { IpMode, PrivacyOptions } from './devices/privacy.js'
export type { LocationResolver } from './devices/client.js'
