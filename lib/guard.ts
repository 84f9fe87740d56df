import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ActivityObserver } from './activity.js'
import { safeEqual } from './crypto.js'
import type { TokenSource } from './http/access-token-source.js'
import { checkCsrf, csrfRefusal, isAllowedOrigin, needsCsrfCheck, type CsrfPolicy } from './http/csrf.js'
import { checkDpopRequest, readDpopToken, type DpopProofs } from './http/dpop.js'
import { isFingerprintRejection, readFingerprintHash } from './http/fingerprint.js'
import type { SessionEventStream } from './monitoring/events.js'
import { refusal } from './refusal.js'
import { StepUpRequiredError } from './errors.js'
import { isChallenged, lifetimeOf, type Clock, type Lifetimes } from './session.js'
import type { FailClosedStore } from './stores/fail-closed.js'
import type { AccessClaims, AccessTokens } from './tokens/access-tokens.js'
import { admitted } from './watch.js'
import { bool, optionalFunction, section, type OptionNames } from './validate.js'

export type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

export type { TokenExtractor } from './http/access-token-source.js'

/** What the guard works with. */
export interface GuardContext {
  /** The fail-closed store. */
  readonly store: FailClosedStore
  readonly accessTokens: AccessTokens
  readonly events: SessionEventStream
  readonly activity: ActivityObserver
  readonly lifetimes: Lifetimes
  readonly clock: Clock
  /** Activity is written at most once per this interval. */
  readonly touchIntervalMs: number
  /** Name of the fingerprint cookie. */
  readonly fingerprintCookie: string
  /**
   * Checked on unsafe methods when the cookies may arrive cross-site; its
   * origins are also those a WebSocket upgrade or an event stream may come from.
   */
  readonly csrf: CsrfPolicy
  /**
   * Where the access token comes from: the route's or the plugin's
   * `extractToken`, then the `Authorization` header, its cookie, or both (`accessToken.transport`).
   */
  readonly tokenSource: TokenSource
  /** DPoP proofs, when the `dpop` option is on. */
  readonly dpop?: DpopProofs | undefined
}

/**
 * The guard: a `preHandler` (or `onRequest`) hook that lets a request through
 * only with a valid access token, the fingerprint cookie it is bound to, and a
 * live session in the store that matches both. Then it records activity (at
 * most once per `touchInterval`) and sets `request.user` and `request.authSession`.
 * A challenged session passes only on routes that allow it (`allowChallenged`).
 * A WebSocket upgrade or an `EventSource` request from a foreign `Origin` is
 * refused before anything else (cross-site WebSocket hijacking). When the
 * cookies may arrive cross-site (`cookies.sameSite` Lax or None), an unsafe
 * request is refused first without the CSRF header and an allowed Origin; so
 * is one whose access token came from its cookie, whatever `SameSite` says.
 */
export function createGuard (context: GuardContext): Guard {
  const { store, accessTokens, events, activity, lifetimes, clock, touchIntervalMs, fingerprintCookie, csrf, tokenSource, dpop } = context
  const hot = store.unwrapped

  function reject (request: FastifyRequest, reply: FastifyReply, reason: string, claims?: AccessClaims): never {
    // RFC 6750: the same challenge whatever failed (a DPoP refusal has set its own, RFC 9449 §7.1),
    // in the scheme the request used: `DPoP` for `Authorization: DPoP` (RFC 9449 §7.1).
    if (!reply.hasHeader('www-authenticate')) {
      if (dpop !== undefined && readDpopToken(request) !== undefined) dpop.refuseToken(reply)
      else reply.header('www-authenticate', 'Bearer realm="session", error="invalid_token"')
    }
    throw refusal(events, request.log, clock(), reason, claims === undefined ? undefined : { userId: claims.sub, id: claims.sid })
  }

  return async function requireSession (request, reply) {
    if (isRealtime(request) && !isAllowedOrigin(request, csrf.allowedOrigins)) {
      events.publish(request.log, 'auth.rejected', clock(), undefined, { reason: 'foreign_origin' })
      throw csrfRefusal(request, 'csrf_origin_not_allowed')
    }
    // `Authorization: DPoP` (RFC 9449) carries no cookie, so no CSRF check applies.
    const dpopToken = dpop === undefined ? undefined : readDpopToken(request)
    if (dpopToken === undefined && needsCsrfCheck(request, csrf)) checkCsrf(request, csrf)
    const source = dpopToken === undefined ? tokenSource(request) : { token: dpopToken }
    if ('rejected' in source) return reject(request, reply, source.rejected)

    const now = clock()
    const claims = accessTokens.verify(source.token, now)
    if (typeof claims === 'string') return reject(request, reply, claims)

    if (dpopToken !== undefined || claims.cnf !== undefined) {
      // Bound to a DPoP key: its proof instead of the fingerprint cookie.
      const refused = await checkDpopRequest(dpop, request, reply, { token: source.token, claims, scheme: dpopToken === undefined ? 'bearer' : 'dpop', now })
      if (refused !== undefined) return reject(request, reply, refused, claims)
    } else {
      const fingerprintHash = readFingerprintHash(request, fingerprintCookie)
      if (isFingerprintRejection(fingerprintHash)) return reject(request, reply, fingerprintHash, claims)
      if (!safeEqual(fingerprintHash, claims.fph)) return reject(request, reply, 'fingerprint_mismatch', claims)
    }

    let session
    try {
      session = await hot.get(claims.sid, now)
    } catch (err) {
      throw store.failure(err)
    }
    if (session === undefined) return reject(request, reply, 'unknown_session', claims)
    if (session.userId !== claims.sub || session.fingerprintHash !== claims.fph) {
      return reject(request, reply, 'session_mismatch', claims)
    }

    if (now - session.lastSeenAt >= touchIntervalMs) {
      const observed = await activity.observe(request, session, now, lifetimeOf(lifetimes, session.remembered))
      if (observed.refused) return reject(request, reply, 'anomaly', claims)
      try {
        session = await hot.touch(session.id, observed.activity, now)
      } catch (err) {
        throw store.failure(err)
      }
      // Revoked between the read and the write: the revocation wins.
      if (session === undefined) return reject(request, reply, 'unknown_session', claims)
    }
    if (isChallenged(session) && request.routeOptions.config.allowChallenged !== true) {
      // RFC 9470: the token is good, the authentication behind it is not enough (yet).
      reply.header('www-authenticate', 'Bearer realm="session", error="insufficient_user_authentication", error_description="complete the step-up"')
      events.publish(request.log, 'auth.rejected', now, session, { reason: 'step_up_required' })
      throw new StepUpRequiredError()
    }

    request.user = claims as typeof request.user
    request.authSession = session
    admitted(request, reply)
  }
}

/** What `global.skip` sees of a route: `request.routeOptions` (`method`, `url`, `config` …) of a route that exists. */
export type RouteInfo = FastifyRequest['routeOptions'] & { readonly url: string }

/** The `global` option as an object: `global: { skip }` guards the scope as `global: true` does. */
export interface GlobalOptions {
  /**
   * Routes left unguarded, besides `config: { public: true }` ones and CORS
   * preflights: those of other plugins, which the app does not declare and so
   * cannot mark public, e.g. `(route) => route.url.startsWith('/documentation')`
   * for `@fastify/swagger-ui`, or `route.url === '/status'` for `@fastify/under-pressure`.
   * It sees the route (`request.routeOptions`: `method`, `url`, `config` …), never the request.
   * @default () => false
   */
  skip?: (route: RouteInfo) => boolean
}

/** The `global` option after validation: `undefined` when off. */
export interface GlobalPolicy {
  readonly skip: ((route: RouteInfo) => boolean) | undefined
}

const GLOBAL_OPTION_NAMES: OptionNames<GlobalOptions> = { skip: true }

export function parseGlobalOptions (value: boolean | GlobalOptions | undefined): GlobalPolicy | undefined {
  if (value === undefined || (typeof value !== 'object' && !bool(value, 'global'))) return undefined
  const options = section(value === true ? undefined : value as GlobalOptions, GLOBAL_OPTION_NAMES, 'global')
  return { skip: optionalFunction(options.skip, 'global.skip', '(route) => boolean') }
}

/**
 * The hooks of `global`: the guard at `onRequest`, except on the not-found handler,
 * public routes, the routes `skip` picks, and CORS preflights (an `OPTIONS`
 * with `Access-Control-Request-Method`, which a browser sends without credentials)
 * that a CORS plugin answers before any handler runs.
 */
export function globalGuard (guard: Guard, { skip }: GlobalPolicy): { onRequest: Guard, preHandler: Guard } {
  const guarded = (request: FastifyRequest): boolean =>
    !request.is404 && request.routeOptions.config.public !== true && (skip === undefined || !skip(request.routeOptions as RouteInfo))
  return {
    async onRequest (request, reply) {
      if (isPreflight(request) || !guarded(request)) return
      await guard(request, reply)
    },
    // A preflight that no CORS plugin answered (none registered, or `preflight: false`) reaches a
    // route of the app's that takes OPTIONS (`app.all`): it is guarded there, like any request.
    async preHandler (request, reply) {
      if (isPreflight(request) && guarded(request)) await guard(request, reply)
    }
  }
}

/**
 * A request whose answer a page of any origin could read or drive once it is
 * let in: a WebSocket upgrade (not subject to CORS at all) or an `EventSource`
 * (which asks for `text/event-stream`).
 */
function isRealtime (request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket' || request.headers.accept?.includes('text/event-stream') === true
}

/** A CORS preflight: an `OPTIONS` with `Access-Control-Request-Method`, which a browser sends without credentials. */
function isPreflight (request: FastifyRequest): boolean {
  return request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined
}
