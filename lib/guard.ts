import type { FastifyReply, FastifyRequest } from 'fastify'
import { safeEqual } from './crypto.js'
import { UnauthorizedError } from './errors.js'
import { storeCall, storeFailure } from './stores/fail-closed.js'
import { isFingerprintRejection, readFingerprintHash } from './http/fingerprint.js'
import type { Runtime } from './runtime.js'
import type { SessionRecord } from './session.js'
import type { SessionChanges } from './stores/store.js'
import type { AccessClaims } from './tokens/tokens.js'

/** Longest `Authorization` header the guard will look at. */
const MAX_AUTHORIZATION_LENGTH = 8192
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i

export type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * The guard: a `preHandler` (or `onRequest`) hook that lets a request through
 * only with a valid access token, the fingerprint cookie it is bound to, and a
 * live session in the store that matches both. Then it records activity (at
 * most once per `touchInterval`) and sets `request.user` and `request.authSession`.
 */
export function createGuard (runtime: Runtime): Guard {
  const { store, accessTokens, options, events } = runtime
  const { clock, touchIntervalMs } = options
  const cookieName = options.cookies.fingerprint

  function reject (request: FastifyRequest, reply: FastifyReply, reason: string, claims?: AccessClaims): never {
    events.publish(request.log, 'auth.rejected', clock(), claims === undefined ? undefined : { userId: claims.sub, id: claims.sid }, { reason })
    // RFC 6750: the same challenge whatever failed, so the answer tells an attacker nothing.
    reply.header('www-authenticate', 'Bearer realm="session", error="invalid_token"')
    throw new UnauthorizedError()
  }

  async function revokeForAnomaly (request: FastifyRequest, session: SessionRecord): Promise<void> {
    const now = clock()
    if (await storeCall(request.log, () => store.revoke(session.id, now)) !== undefined) {
      events.publish(request.log, 'session.revoked', now, session, { reason: 'anomaly' })
    }
  }

  return async function requireSession (request, reply) {
    const authorization = request.headers.authorization
    if (authorization === undefined) return reject(request, reply, 'missing_token')
    const match = authorization.length <= MAX_AUTHORIZATION_LENGTH ? BEARER.exec(authorization) : null
    if (match === null) return reject(request, reply, 'malformed_token')

    const now = clock()
    const claims = accessTokens.verify(match[1] as string, now)
    if (typeof claims === 'string') return reject(request, reply, claims)

    const fingerprintHash = readFingerprintHash(request, cookieName)
    if (isFingerprintRejection(fingerprintHash)) return reject(request, reply, fingerprintHash, claims)
    if (!safeEqual(fingerprintHash, claims.fph)) return reject(request, reply, 'fingerprint_mismatch', claims)

    let session
    // Inline rather than storeCall: no closure per request on the hot path.
    try {
      session = await store.get(claims.sid, now)
    } catch (err) {
      throw storeFailure(request.log, err)
    }
    if (session === undefined) return reject(request, reply, 'unknown_session', claims)
    if (session.userId !== claims.sub || session.fingerprintHash !== claims.fph) {
      return reject(request, reply, 'session_mismatch', claims)
    }

    if (now - session.lastSeenAt >= touchIntervalMs) {
      const { idleMs } = runtime.lifetime(session.remembered)
      let changes: SessionChanges | undefined = await runtime.client.changes(session, request)
      if (changes !== undefined) {
        const verdict = await runtime.anomalies.onRequest(request, session, changes)
        if (verdict.revoke) {
          await revokeForAnomaly(request, session)
          return reject(request, reply, 'anomaly', claims)
        }
        if (verdict.flags.length > 0) changes = { ...changes, flags: [...new Set([...session.flags ?? [], ...verdict.flags])] }
      }
      const activity = { lastSeenAt: now, idleExpiresAt: Math.min(now + idleMs, session.absoluteExpiresAt), ...(changes === undefined ? {} : { changes }) }
      try {
        session = await store.touch(session.id, activity, now)
      } catch (err) {
        throw storeFailure(request.log, err)
      }
      // Revoked between the read and the write: the revocation wins.
      if (session === undefined) return reject(request, reply, 'unknown_session', claims)
    }

    request.user = claims as typeof request.user
    request.authSession = session
  }
}
