import type { FastifyReply, FastifyRequest } from 'fastify'
import { randomToken, safeEqual } from './crypto.js'
import {
  AnomalyError,
  CsrfError,
  NoSessionError,
  RefreshConflictError,
  SessionLimitError,
  UnauthorizedError
} from './errors.js'
import { storeCall } from './stores/fail-closed.js'
import { createFingerprint, isFingerprintRejection, readFingerprintHash } from './http/fingerprint.js'
import type { Runtime } from './runtime.js'
import type { SessionRecord } from './session.js'
import { idSetHash, RESERVED_CLAIMS } from './tokens/tokens.js'
import { toViews } from './http/views.js'

/** 128 random bits. */
const SESSION_ID_BYTES = 16
const MAX_USER_ID_LENGTH = 256
const MAX_REFRESH_TOKEN_LENGTH = 256

/** What `reply.issueSession()` takes. */
export interface IssueSessionInput {
  /** The authenticated user's id (becomes the token's `sub`). */
  userId: string
  /** The app's own claims, signed into every access token of the session. */
  claims?: Record<string, unknown>
  /** Longer lifetimes and persistent cookies ("remember me"). */
  remember?: boolean
}

/** What issuing, refreshing or regenerating a session gives back. */
export interface IssuedSession {
  /** The access token, for the client's `Authorization: Bearer` header. */
  accessToken: string
  /** The refresh token, only when `refresh.transport` is `'body'` (otherwise it is in its cookie). */
  refreshToken?: string
  session: SessionRecord
}

/**
 * Issues, refreshes, regenerates and ends sessions: every step that hands a
 * client new credentials or takes them away.
 */
export class Lifecycle {
  readonly #runtime: Runtime

  constructor (runtime: Runtime) {
    this.#runtime = runtime
  }

  /** Creates a session under the per-user limit, sets its cookies and signs its first access token. */
  async issue (reply: FastifyReply, input: IssueSessionInput): Promise<IssuedSession> {
    return await this.#create(reply, validateInput(input), createFingerprint())
  }

  /**
   * Completes a login refused at the session limit: checks the ticket and the
   * fingerprint cookie set with the 409, signs out the session the user picked
   * (one of those the ticket saw), and creates the new one.
   */
  async resolveLimit (request: FastifyRequest, reply: FastifyReply, ticketToken: string, revokeId: string): Promise<IssuedSession> {
    const { options, store, events, tickets } = this.#runtime
    const now = options.clock()
    const fail = (reason: string): never => {
      events.publish(request.log, 'auth.rejected', now, undefined, { reason })
      throw new UnauthorizedError()
    }
    const ticket = tickets.verify(ticketToken, now)
    if (ticket === undefined) return fail('invalid_ticket')
    const fingerprintHash = readFingerprintHash(request, options.cookies.fingerprint)
    if (isFingerprintRejection(fingerprintHash)) return fail(fingerprintHash)
    if (!safeEqual(fingerprintHash, ticket.fingerprintHash)) return fail('fingerprint_mismatch')
    const fingerprint = request.cookies[options.cookies.fingerprint] as string

    const active = await storeCall(request.log, () => store.listUser(ticket.userId, now))
    if (idSetHash(active.map((session) => session.id)) !== ticket.activeHash) return fail('stale_ticket')
    if (!active.some((session) => session.id === revokeId)) return fail('unknown_session')
    // Only one request can revoke a given session: this makes the ticket single-use.
    const revoked = await storeCall(request.log, () => store.revoke(revokeId, now))
    if (revoked === undefined) return fail('stale_ticket')
    events.publish(request.log, 'session.revoked', now, revoked, { reason: 'user' })
    return await this.#create(reply, ticket, { value: fingerprint, hash: fingerprintHash })
  }

  async #create (reply: FastifyReply, input: IssueSessionInput, fingerprint: { value: string, hash: string }): Promise<IssuedSession> {
    const { options, store, events } = this.#runtime
    const { userId, claims, remember = false } = input
    const now = options.clock()
    const { idleMs, absoluteMs } = this.#runtime.lifetime(remember)
    const id = randomToken(SESSION_ID_BYTES)
    const refresh = this.#runtime.refreshTokens.issue(id)
    const client = await this.#runtime.client.describe(reply.request)
    // The anomaly rules count in the store: a store that fails there fails the login closed, as create would.
    const verdict = await storeCall(reply.log, () => this.#runtime.anomalies.atLogin(reply.request, userId, client))
    if (verdict.revoke) throw new AnomalyError()
    const session: SessionRecord = {
      ...client,
      ...(verdict.flags.length === 0 ? {} : { flags: verdict.flags }),
      id,
      userId,
      fingerprintHash: fingerprint.hash,
      createdAt: now,
      lastSeenAt: now,
      idleExpiresAt: now + Math.min(idleMs, absoluteMs),
      absoluteExpiresAt: now + absoluteMs,
      remembered: remember,
      ...(claims === undefined ? {} : { claims }),
      refresh: { hash: refresh.hash, rotatedAt: now, rotations: 0 }
    }

    const result = await storeCall(reply.log, () => store.create(session, options.limit, now))
    if (!result.created) {
      // The way out: the fingerprint cookie now, and a ticket bound to it and to
      // the sessions seen, with which the client signs one out and logs in.
      this.#runtime.cookies.set(reply, session, fingerprint.value, undefined, now)
      const ticket = this.#runtime.tickets.sign({
        userId, claims, remember, fingerprintHash: fingerprint.hash, activeHash: idSetHash(result.active.map((s) => s.id))
      }, now)
      throw Object.assign(new SessionLimitError(), { sessions: toViews(result.active), ticket })
    }
    for (const evicted of result.evicted) {
      events.publish(reply.log, 'session.revoked', now, evicted, { reason: 'limit' })
    }
    events.publish(reply.log, 'session.created', now, session, { remembered: remember, ...(session.flags === undefined ? {} : { flags: session.flags }) })
    return this.#deliver(reply, session, fingerprint.value, refresh.token, now)
  }

  /**
   * Trades a refresh token (with its fingerprint cookie) for a new access
   * token and a new refresh token. An older refresh token revokes the session.
   */
  async refresh (request: FastifyRequest, reply: FastifyReply): Promise<IssuedSession> {
    const { options, store, events, refreshTokens } = this.#runtime
    const now = options.clock()
    const fail = (reason: string, session?: SessionRecord): never => {
      events.publish(request.log, 'auth.rejected', now, session, { reason })
      this.#runtime.cookies.clear(reply)
      throw new UnauthorizedError()
    }

    if (options.refresh.transport === 'cookie') this.#checkCsrf(request)
    const token = this.#presentedRefreshToken(request)
    if (token === undefined) return fail('missing_refresh_token')
    const opened = refreshTokens.open(token)
    if (opened === undefined) return fail('invalid_refresh_token')
    const fingerprintHash = readFingerprintHash(request, options.cookies.fingerprint)
    if (isFingerprintRejection(fingerprintHash)) return fail(fingerprintHash)

    const current = await storeCall(request.log, () => store.get(opened.sessionId, now))
    if (current === undefined) return fail('unknown_session')
    if (current.fingerprintHash !== fingerprintHash) return fail('fingerprint_mismatch', current)

    const successor = refreshTokens.issue(current.id)
    const client = await this.#runtime.client.changes(current, request)
    const { idleMs } = this.#runtime.lifetime(current.remembered)
    const result = await storeCall(request.log, () => store.rotate(current.id, {
      presentedHash: opened.hash,
      successorHash: successor.hash,
      graceMs: options.refresh.graceMs,
      activity: {
        lastSeenAt: now,
        idleExpiresAt: Math.min(now + idleMs, current.absoluteExpiresAt),
        ...(client === undefined ? {} : { changes: client })
      }
    }, now))

    switch (result.outcome) {
      case 'missing':
        return fail('unknown_session', current)
      case 'conflict':
        throw new RefreshConflictError()
      case 'reuse':
        events.publish(request.log, 'refresh.reuse_detected', now, current, {})
        events.publish(request.log, 'session.revoked', now, current, { reason: 'reuse' })
        return fail('refresh_token_reuse', current)
    }
    events.publish(request.log, 'session.refreshed', now, result.session, { rotations: result.session.refresh.rotations })
    return this.#deliver(reply, result.session, undefined, successor.token, now)
  }

  /**
   * Replaces the request's session with a new one (new id, fingerprint and
   * tokens) in one store step, so nothing known before works after. Use it
   * after a privilege change. The absolute deadline carries over.
   */
  async regenerate (request: FastifyRequest, reply: FastifyReply, claims?: Record<string, unknown>): Promise<IssuedSession> {
    const { options, store, events } = this.#runtime
    const old = currentSession(request)
    const now = options.clock()
    const id = randomToken(SESSION_ID_BYTES)
    const fingerprint = createFingerprint()
    const refresh = this.#runtime.refreshTokens.issue(id)
    const newClaims = claims === undefined ? old.claims : validateClaims(claims)
    const session: SessionRecord = {
      ...old,
      id,
      fingerprintHash: fingerprint.hash,
      lastSeenAt: now,
      ...(newClaims === undefined ? {} : { claims: newClaims }),
      refresh: { hash: refresh.hash, rotatedAt: now, rotations: 0 }
    }
    const replaced = await storeCall(request.log, () => store.replace(old.id, session, now))
    if (!replaced) {
      events.publish(request.log, 'auth.rejected', now, old, { reason: 'unknown_session' })
      throw new UnauthorizedError()
    }
    events.publish(request.log, 'session.revoked', now, old, { reason: 'regenerate' })
    events.publish(request.log, 'session.created', now, session, { remembered: old.remembered })
    request.authSession = session
    return this.#deliver(reply, session, fingerprint.value, refresh.token, now)
  }

  /** Revokes the request's session and clears its cookies (logout). */
  async end (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { options, store, events } = this.#runtime
    const session = currentSession(request)
    const now = options.clock()
    const revoked = await storeCall(request.log, () => store.revoke(session.id, now))
    if (revoked !== undefined) {
      events.publish(request.log, 'session.revoked', now, session, { reason: 'user' })
    }
    this.#runtime.cookies.clear(reply)
    request.authSession = null
  }

  #deliver (reply: FastifyReply, session: SessionRecord, fingerprint: string | undefined, refreshToken: string, now: number): IssuedSession {
    this.#runtime.cookies.set(reply, session, fingerprint, refreshToken, now)
    const issued: IssuedSession = { accessToken: this.#runtime.accessTokens.sign(session, now), session }
    if (this.#runtime.options.refresh.transport === 'body') issued.refreshToken = refreshToken
    return issued
  }

  #presentedRefreshToken (request: FastifyRequest): string | undefined {
    const { options } = this.#runtime
    const token = options.refresh.transport === 'cookie'
      ? request.cookies[options.cookies.refresh]
      : (request.body as { refreshToken?: unknown } | undefined)?.refreshToken
    return typeof token === 'string' && token.length <= MAX_REFRESH_TOKEN_LENGTH ? token : undefined
  }

  /**
   * A cookie rides along with any request the browser makes, so a refresh by
   * cookie needs proof the request came from the app's own script: a custom
   * header (a cross-site form cannot set one, and CORS preflights it) and, when
   * the browser says where it comes from, an allowed origin.
   */
  #checkCsrf (request: FastifyRequest): void {
    const { csrfHeader, allowedOrigins } = this.#runtime.options.refresh
    if (request.headers[csrfHeader] === undefined) throw new CsrfError()
    const origin = request.headers.origin
    if (origin === undefined) return
    const allowed = allowedOrigins.size > 0
      ? allowedOrigins.has(origin)
      : origin === `${request.protocol}://${request.host}`
    if (!allowed) throw new CsrfError()
  }
}

/** The request's authenticated session; only after the guard ran. */
function currentSession (request: FastifyRequest): SessionRecord {
  const session = request.authSession
  if (session === null) throw new NoSessionError()
  return session
}

function validateInput (input: IssueSessionInput): IssueSessionInput {
  if (typeof input !== 'object' || input === null) throw new TypeError('issueSession() takes { userId, claims?, remember? }')
  const { userId, remember } = input
  if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH) {
    throw new TypeError(`issueSession(): userId must be a non-empty string of at most ${MAX_USER_ID_LENGTH} characters`)
  }
  if (remember !== undefined && typeof remember !== 'boolean') throw new TypeError('issueSession(): remember must be a boolean')
  const claims = input.claims === undefined ? undefined : validateClaims(input.claims)
  return { userId, claims, remember }
}

function validateClaims (claims: Record<string, unknown>): Record<string, unknown> {
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new TypeError('claims must be a plain object')
  }
  for (const name of Object.keys(claims)) {
    if (RESERVED_CLAIMS.has(name)) throw new TypeError(`claims may not set the reserved claim "${name}"`)
  }
  return Object.freeze({ ...claims })
}
