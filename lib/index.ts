import fastifyCookie from '@fastify/cookie'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { SessionCookies } from './cookies.js'
import { SessionEventStream } from './events.js'
import { createGuard } from './guard.js'
import { Lifecycle } from './lifecycle.js'
import { SessionManager } from './manager.js'
import { normalizeOptions, type NormalizedOptions, type SessionGuardOptions } from './options.js'
import type { Runtime } from './runtime.js'
import { expiryReason } from './session.js'
import { AccessTokens, RefreshTokens } from './tokens.js'
import './types.js'

const sessionGuard: FastifyPluginAsync<SessionGuardOptions> = async (fastify, opts) => {
  if (fastify.hasDecorator('sessions')) {
    throw new Error('fastify-session-guard is already registered in this scope')
  }
  const options = normalizeOptions(opts)
  if (!fastify.hasRequestDecorator('cookies')) await fastify.register(fastifyCookie)
  const jwt = await privateJwt(fastify, options)

  const { store, clock, lifetimes } = options
  const events = new SessionEventStream(fastify.log)
  const runtime: Runtime = {
    options,
    store,
    accessTokens: new AccessTokens(jwt, options.accessTokenTtlMs, options.clockToleranceMs),
    refreshTokens: new RefreshTokens(options.signing.signKey),
    cookies: new SessionCookies(options),
    events,
    lifetime: (remembered) => remembered ? lifetimes.remembered : lifetimes.normal
  }
  await store.open?.({
    now: clock,
    onRemoved (session, reason) {
      const fields = { userId: session.userId, sessionId: session.id }
      if (reason === 'capacity') events.publish(undefined, 'session.evicted', clock(), fields)
      else events.publish(undefined, 'session.expired', clock(), { ...fields, reason: expiryReason(session, clock()) === 'absolute_timeout' ? 'absolute' : 'idle' })
    }
  })
  fastify.addHook('onClose', async () => await store.close())

  const guard = createGuard(runtime)
  const lifecycle = new Lifecycle(runtime)
  fastify.decorate('requireSession', guard)
  fastify.decorate('sessions', new SessionManager(runtime))
  // The same `request.user` as @fastify/jwt's, so an app using both sees one property.
  if (!fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null as never)
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

  if (options.global) {
    fastify.addHook('onRequest', async (request, reply) => {
      if (request.is404 || request.routeOptions.config.public === true) return
      await guard(request, reply)
    })
  }
}

/**
 * Registers @fastify/jwt in a child context of its own, so its decorators never
 * meet an @fastify/jwt the app registers for itself, and returns its signer and
 * verifier with the algorithm pinned.
 */
async function privateJwt (fastify: FastifyInstance, options: NormalizedOptions): Promise<JWT> {
  const { algorithm, signKey, verifyKey, issuer, audience } = options.signing
  let jwt: JWT | undefined
  await fastify.register(async function sessionGuardJwt (child) {
    await child.register(fastifyJwt, {
      secret: { private: signKey, public: verifyKey },
      sign: { algorithm, ...(issuer === undefined ? {} : { iss: issuer }), ...(audience === undefined ? {} : { aud: audience }) },
      verify: {
        algorithms: [algorithm],
        ...(issuer === undefined ? {} : { allowedIss: issuer }),
        ...(audience === undefined ? {} : { allowedAud: audience }),
        // Expiry is checked against the injected clock in tokens.ts.
        ignoreExpiration: true,
        ignoreNotBefore: true
      }
    })
    jwt = child.jwt
  })
  return jwt as JWT
}

export default fp(sessionGuard, { fastify: '5.x', name: 'fastify-session-guard' })
export { sessionGuard }
export * from './errors.js'
export { MemoryStore, memoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { RedisStore, redisStore, type RedisStoreOptions } from './stores/redis.js'
export type * from './stores/store.js'
export type { Clock, RefreshState, SessionRecord } from './session.js'
export type { Duration, RefreshOptions, SessionGuardOptions } from './options.js'
export type { IssuedSession, IssueSessionInput } from './lifecycle.js'
export type { SessionManager } from './manager.js'
export type { RevocationReason, SessionEvent, SessionEventName, SessionEvents } from './events.js'
export type { AccessClaims } from './tokens.js'
export type { Guard } from './guard.js'
