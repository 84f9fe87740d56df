import fastifyCookie from '@fastify/cookie'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AnomalyDetector } from './monitoring/anomaly.js'
import { ClientObserver } from './devices/client.js'
import { SessionCookies } from './http/cookies.js'
import { AlreadyRegisteredError, InvalidOptionError } from './errors.js'
import { SessionEventStream } from './monitoring/events.js'
import { createGuard } from './guard.js'
import { Lifecycle } from './lifecycle.js'
import { SessionManager } from './manager.js'
import { SessionMetrics } from './monitoring/metrics.js'
import { monitoringRoutes } from './http/monitoring-routes.js'
import { normalizeOptions, type NormalizedOptions, type SessionGuardOptions } from './options.js'
import type { Runtime } from './runtime.js'
import { expiryReason } from './session.js'
import { sessionRoutes } from './http/routes.js'
import { AccessTokens, LimitTickets, RefreshTokens } from './tokens/tokens.js'
import './fastify-augment.js'

const JWT_NAMESPACE = 'sessionGuard'
/** How long a client has to resolve a login refused at the session limit. */
const LIMIT_TICKET_TTL_MS = 5 * 60_000

const sessionGuard: FastifyPluginAsync<SessionGuardOptions> = async (fastify, opts) => {
  if (fastify.hasDecorator('sessions')) throw new AlreadyRegisteredError()
  const options = normalizeOptions(opts)
  if (!fastify.hasRequestDecorator('cookies')) await fastify.register(fastifyCookie)
  const jwt = await privateJwt(fastify, options)

  const { store, clock, lifetimes } = options
  const metrics = new SessionMetrics()
  const events = new SessionEventStream(fastify.log, options.onEvent, (event) => metrics.record(event))
  const runtime: Runtime = {
    options,
    store,
    accessTokens: new AccessTokens(jwt, options.accessTokenTtlMs, options.clockToleranceMs),
    refreshTokens: new RefreshTokens(options.signing.signKey),
    tickets: new LimitTickets(jwt, LIMIT_TICKET_TTL_MS),
    cookies: new SessionCookies(options),
    events,
    client: new ClientObserver(options),
    metrics,
    anomalies: new AnomalyDetector({ store, events, clock }, options.anomalies),
    lifetime: (remembered) => remembered ? lifetimes.remembered : lifetimes.normal
  }
  await store.open?.({
    now: clock,
    onRemoved (session, reason) {
      if (reason === 'capacity') events.publish(undefined, 'session.evicted', clock(), session, {})
      else events.publish(undefined, 'session.expired', clock(), session, { reason: expiryReason(session, clock()) })
    }
  })
  fastify.addHook('onClose', async () => await store.close())

  const guard = createGuard(runtime)
  const lifecycle = new Lifecycle(runtime)
  const manager = new SessionManager(runtime)
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

/**
 * Registers @fastify/jwt in a child context of its own and under a namespace,
 * so it never clashes with an @fastify/jwt the app registers itself, before or
 * after this plugin (when the app's comes first, ours is `app.jwt.sessionGuard`).
 * Returns its signer and verifier, with the algorithm pinned.
 */
async function privateJwt (fastify: FastifyInstance, options: NormalizedOptions): Promise<JWT> {
  const { algorithm, signKey, verifyKey, issuer, audience } = options.signing
  let jwt: JWT | undefined
  await fastify.register(async function sessionGuardJwt (child) {
    try {
      await child.register(fastifyJwt, {
        namespace: JWT_NAMESPACE,
        decoratorName: `${JWT_NAMESPACE}Claims`,
        secret: { private: signKey, public: verifyKey },
        sign: { algorithm, ...(issuer === undefined ? {} : { iss: issuer }), ...(audience === undefined ? {} : { aud: audience }) },
        verify: {
          algorithms: [algorithm],
          ...(issuer === undefined ? {} : { allowedIss: issuer }),
          ...(audience === undefined ? {} : { allowedAud: audience }),
          // fast-jwt checks iss and aud only when present: a token without them must not pass.
          requiredClaims: [...(issuer === undefined ? [] : ['iss']), ...(audience === undefined ? [] : ['aud'])],
          // Expiry is checked against the injected clock in tokens.ts.
          ignoreExpiration: true,
          ignoreNotBefore: true
        }
      })
    } catch (err) {
      // fast-jwt checks that the keys fit the algorithm (a secret is fully checked in options.ts);
      // its refusal names our option, like every other.
      throw new InvalidOptionError('keys', (err as Error).message)
    }
    jwt = (child.jwt as unknown as Record<string, JWT>)[JWT_NAMESPACE]
  })
  return jwt as JWT
}

export default fp(sessionGuard, { fastify: '5.x', name: 'fastify-session-guard' })
export { sessionGuard }
export * from './errors.js'
export { MemoryStore, memoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { RedisStore, redisStore, type RedisStoreOptions } from './stores/redis/redis-store.js'
export type * from './stores/store.js'
export type { Clock, Location, RefreshState, SessionRecord } from './session.js'
export { decideRotation, expiresAt, isLive, rotatedState, withActivity, type RotationDecision } from './session.js'
export type { Duration, RefreshOptions, SessionGuardOptions } from './options.js'
export type { IssuedSession, IssueSessionInput } from './lifecycle.js'
export type { SessionManager } from './manager.js'
export type { RevocationReason, SessionEvent, SessionEventName, SessionEvents } from './monitoring/events.js'
export type { AccessClaims } from './tokens/tokens.js'
export type { Guard } from './guard.js'
export type { Anomaly, AnomalyHook } from './monitoring/anomaly.js'
export type { AnomalyDecision, AnomalyRule, EventBase } from './monitoring/events.js'
export type { AnomalyOptions, LockoutOptions } from './options.js'
export type { LoginAttempts } from './monitoring/login-attempts.js'
export type { SessionStats } from './manager.js'
export type { EventCounts } from './monitoring/metrics.js'
export type { AnalyticsOptions, SessionAnalytics } from './monitoring/analytics.js'
export { sessionLimitResponseSchema, sessionViewSchema, toView, type SessionView } from './http/views.js'
export { createDeviceParser, parseDevice, type DeviceInfo, type DeviceParser, type DeviceType } from './devices/device.js'
export type { IpMode, PrivacyOptions } from './devices/privacy.js'
