import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ActivityObserver } from './activity.js'
import type { ClientObserver } from './devices/client.js'
import { randomToken, safeEqual } from './crypto.js'
import {
  AnomalyError,
  InvalidDpopProofError,
  InvalidOptionError,
  NoSessionError,
  RefreshConflictError,
  SessionLimitError
} from './errors.js'
import type { SessionCookies } from './http/cookies.js'
import { checkCsrf, needsCsrfCheck, type CsrfPolicy } from './http/csrf.js'
import { boundKey, dpopBinding, DpopProofs } from './http/dpop.js'
import { createFingerprint, isFingerprintRejection, readFingerprint, readFingerprintHash } from './http/fingerprint.js'
import { toViews } from './http/views.js'
import { limitFor, type DeviceTypeLimits } from './limits.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { SessionEventStream } from './monitoring/events.js'
import { refusal } from './refusal.js'
import { requireDevices, type RememberedDevices } from './remembered-devices.js'
import { deviceTypeOf, displaceable, isChallenged, lifetimeOf, sessionRecord, startTimes, type ClientInfo, type Clock, type Lifetimes, type SessionRecord } from './session.js'
import type { CreateResult, DeviceTypeLimit, SessionLimit, SessionStore } from './stores/store.js'
import { checkClaims, isStorable, type AccessTokens } from './tokens/access-tokens.js'
import type { DeviceToken } from './tokens/device-tokens.js'
import { idSetHash, type LimitTickets } from './tokens/limit-tickets.js'
import type { OpenedRefreshToken, RefreshTokens } from './tokens/refresh-tokens.js'
import { duration, isToken, origins, routePath, section, shown, type Duration, type OptionNames } from './validate.js'

/** 128 random bits. */
const SESSION_ID_BYTES = 16
const MAX_USER_ID_LENGTH = 256
const MAX_REFRESH_TOKEN_LENGTH = 256

/** The `refreshToken` of the request's body, whatever its type. */
function bodyRefreshToken (request: FastifyRequest): unknown {
  return (request.body as { refreshToken?: unknown } | undefined)?.refreshToken
}
const DEFAULT_GRACE_WINDOW = '10s'
const DEFAULT_CSRF_HEADER = 'x-requested-with'
const DEFAULT_REFRESH_PATH = '/refresh'

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
   * Path of the refresh cookie, when the browser reaches the refresh route at
   * another path than the app declares it: behind a proxy that strips a
   * prefix (`'/api/refresh'` for a route at `'/refresh'` the proxy serves at
   * `/api/refresh`). It must reach the route: the refresh `path`, a parent of
   * it, or a path ending with it; and it may not be `'/'` with `cookies.domain`
   * (the refresh token would go with every request to every host under the domain).
   * @default the refresh `path`
   */
  cookiePath?: string
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
   * Header a cookie-carried refresh must send; a cross-site form cannot. With
   * `cookies.sameSite` `'lax'` or `'none'`, every cookie-authenticated unsafe
   * request must send it (see `cookies.sameSite`). A header any page may send
   * without CORS or that the browser sets itself (`content-type`, `accept`,
   * `accept-language`, `content-language`, `range`, `cookie`, `origin`,
   * `referer`, `host`, `user-agent`, `authorization`, any `sec-*` or `proxy-*`,
   * and the Fetch standard's other forbidden names) is refused: it proves nothing.
   * @default 'x-requested-with'
   */
  csrfHeader?: string
  /**
   * Origins allowed to refresh. A request with an `Origin` header outside this
   * list is refused. Empty: only the request's own origin. With
   * `cookies.sameSite` `'lax'` or `'none'`, it guards every
   * cookie-authenticated unsafe request, and one without `Origin` is refused;
   * `'none'` needs the list, of `https://` origins only (`http://localhost`,
   * `http://127.0.0.1` and `http://[::1]`, any port, excepted).
   * @default []
   */
  allowedOrigins?: string[]
}

const REFRESH_OPTION_NAMES: OptionNames<RefreshOptions> = {
  transport: true, path: true, cookiePath: true, cookie: true, graceWindow: true, csrfHeader: true, allowedOrigins: true
}

/** The refresh options after validation. */
export interface RefreshPolicy {
  readonly transport: 'cookie' | 'body'
  readonly path: string
  /** The cookie name asked for; `parseCookieOptions` checks it and picks the default. */
  readonly cookie: string | undefined
  /** The cookie path asked for; `parseCookieOptions` checks it. */
  readonly cookiePath: string | undefined
  readonly graceMs: number
  readonly csrf: CsrfPolicy
}

export function parseRefreshOptions (value: RefreshOptions | undefined): RefreshPolicy {
  const refresh = section(value, REFRESH_OPTION_NAMES, 'refresh')
  const transport = refresh.transport ?? 'cookie'
  if (transport !== 'cookie' && transport !== 'body') {
    throw new InvalidOptionError('refresh.transport', `must be 'cookie' or 'body', got ${shown(transport)}`)
  }
  const path = routePath(refresh.path ?? DEFAULT_REFRESH_PATH, 'refresh.path')
  const csrfHeader = refresh.csrfHeader ?? DEFAULT_CSRF_HEADER
  if (!isToken(csrfHeader)) throw new InvalidOptionError('refresh.csrfHeader', 'must be a header name')
  if (provesNothing(csrfHeader.toLowerCase())) {
    throw new InvalidOptionError('refresh.csrfHeader', `"${csrfHeader.toLowerCase()}" proves nothing: a browser sends it by itself or lets any page send it without a CORS preflight; use a header of the app's own, such as "x-requested-with"`)
  }
  const allowedOrigins = origins(refresh.allowedOrigins ?? [], 'refresh.allowedOrigins')
  return {
    transport,
    path,
    cookie: refresh.cookie,
    cookiePath: refresh.cookiePath,
    graceMs: duration(refresh.graceWindow ?? DEFAULT_GRACE_WINDOW, 'refresh.graceWindow', { allowZero: true }),
    csrf: { header: csrfHeader.toLowerCase(), allowedOrigins: new Set(allowedOrigins), crossSite: false }
  }
}

/**
 * Headers whose presence says nothing about who made the request: the Fetch
 * standard's CORS-safelisted request headers (any page sends them cross-site
 * without a preflight), its forbidden request header names (the browser sets
 * them itself), and the ones a browser adds to requests it makes on its own
 * (`user-agent`, cached `authorization` credentials, cache and priority hints).
 */
const HEADERS_THAT_PROVE_NOTHING: ReadonlySet<string> = new Set([
  'accept', 'accept-language', 'content-language', 'content-type', 'range',
  'accept-charset', 'accept-encoding', 'access-control-request-headers', 'access-control-request-method', 'connection',
  'content-length', 'cookie', 'cookie2', 'date', 'dnt', 'expect', 'host', 'keep-alive', 'origin', 'referer', 'set-cookie',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'via',
  'user-agent', 'authorization', 'cache-control', 'pragma', 'priority', 'upgrade-insecure-requests'
])

/** A header name (lower case) a cross-site page or the browser itself can put on a request. */
function provesNothing (header: string): boolean {
  return HEADERS_THAT_PROVE_NOTHING.has(header) || header.startsWith('sec-') || header.startsWith('proxy-')
}

/** What `reply.issueSession()` takes. */
export interface IssueSessionInput {
  /** The authenticated user's id (becomes the token's `sub`). */
  userId: string
  /** The app's own claims, signed into every access token of the session. */
  claims?: Record<string, unknown>
  /** Longer lifetimes and persistent cookies ("remember me"). */
  remember?: boolean
  /**
   * "Remember this device" (needs the `rememberDevice` option): only a sign-in
   * the anomaly rules gave no flag writes the device cookie; for a flagged or
   * challenged one, ask again after the second factor with
   * `request.completeChallenge(reply, { rememberDevice: true })`.
   */
  rememberDevice?: boolean
}

/** What issuing, refreshing or regenerating a session gives back. */
export interface IssuedSession {
  /** The access token, for the client's `Authorization: Bearer` header (also in its cookie with `accessToken.transport` `'cookie'` or `'both'`). */
  accessToken: string
  /** The refresh token, when `refresh.transport` is `'body'` or the session is DPoP-bound (otherwise it is in its cookie). */
  refreshToken?: string
  /**
   * How the client presents `accessToken`: `'Bearer'` with the fingerprint
   * cookie, or `'DPoP'` with a proof of the key the session is bound to (a
   * login that carried a `DPoP` proof, with the `dpop` option on).
   */
  tokenType: 'Bearer' | 'DPoP'
  session: SessionRecord
  /** `true` when this sign-in wrote the "Remember this device" cookie (a new device, or one renewed). */
  deviceRemembered?: boolean
}

/** A login the anomaly rules let through: who, and the flags they gave it. */
interface Login extends IssueSessionInput {
  readonly flags: readonly string[]
}

/** What the lifecycle works with. */
export interface LifecycleContext {
  /** The fail-closed store. */
  readonly store: SessionStore
  readonly events: SessionEventStream
  readonly clock: Clock
  readonly lifetimes: Lifetimes
  readonly limit: SessionLimit
  /** The limits per device type (`deviceTypeLimits`), applied with the total. */
  readonly deviceTypeLimits: DeviceTypeLimits
  readonly refresh: RefreshPolicy
  readonly accessTokens: AccessTokens
  readonly refreshTokens: RefreshTokens
  readonly tickets: LimitTickets
  readonly cookies: SessionCookies
  readonly client: ClientObserver
  readonly anomalies: AnomalyDetector
  readonly activity: ActivityObserver
  /** "Remember this device", when the `rememberDevice` option is on. */
  readonly devices?: RememberedDevices
  /** DPoP proofs, when the `dpop` option is on. */
  readonly dpop?: DpopProofs | undefined
}

/**
 * Issues, refreshes, regenerates and ends sessions: every step that hands a
 * client new credentials or takes them away.
 */
export class Lifecycle {
  readonly #context: LifecycleContext

  constructor (context: LifecycleContext) {
    this.#context = context
  }

  /** Creates a session under the per-user limit, sets its cookies and signs its first access token. */
  async issue (reply: FastifyReply, input: IssueSessionInput): Promise<IssuedSession> {
    const login = validateInput(input)
    if (login.rememberDevice === true) requireDevices(this.#context.devices, reply)
    const described = await this.#context.client.describe(reply.request)
    const recognised = await this.#context.devices?.recognise(reply.request, login.userId)
    const verdict = await this.#context.anomalies.atLogin(reply.request, login.userId, described, { rememberedDevice: recognised !== undefined })
    if (verdict.revoke) throw new AnomalyError()
    // A login with a DPoP proof binds the session to the proof's key, not to a fingerprint cookie.
    const jkt = await this.#dpopKey(reply.request, reply)
    const fingerprint = jkt === undefined ? createFingerprint() : { value: undefined, hash: dpopBinding(jkt) }
    return await this.#create(reply, { ...login, flags: verdict.flags }, described, fingerprint, recognised)
  }

  /**
   * The thumbprint of the key of the request's DPoP proof, at the token
   * endpoint (a login, a refresh): `undefined` without a `DPoP` header or with
   * the `dpop` option off; a refused proof throws the RFC's 400.
   */
  async #dpopKey (request: FastifyRequest, reply: FastifyReply): Promise<string | undefined> {
    const { dpop, events, clock } = this.#context
    if (dpop === undefined || !DpopProofs.presented(request)) return undefined
    const now = clock()
    const checked = await dpop.atTokenEndpoint(request, reply, now)
    if (checked.reason === undefined) return checked.jkt
    events.publish(request.log, 'auth.rejected', now, undefined, { reason: checked.reason })
    throw checked.error
  }

  /**
   * What binds the request to a session or a limit ticket: the key of its DPoP
   * proof (`jkt`, from `#dpopKey`) when it carries one, its fingerprint cookie
   * otherwise. A DPoP binding matches only its key's; a cookie one only its fingerprint.
   */
  #binding (request: FastifyRequest, jkt: string | undefined): string {
    return jkt === undefined ? readFingerprintHash(request, this.#context.cookies.fingerprintName) : dpopBinding(jkt)
  }

  /**
   * Completes a login refused at the session limit: checks the ticket and what
   * it is bound to (the fingerprint cookie set with the 409, or, for a DPoP
   * login, a proof of the same key), signs out the session the user picked
   * (one of those the ticket offered: the user's sessions, or, when a device
   * type's limit refused, those of that type only), and creates the new one
   * with the flags the refused login earned (the login was judged once, when
   * it was refused).
   */
  async resolveLimit (request: FastifyRequest, reply: FastifyReply, ticketToken: string, revokeId: string): Promise<IssuedSession> {
    const { store, events, tickets, cookies, clock } = this.#context
    const now = clock()
    const refuse = (reason: string): Error => refusal(events, request.log, now, reason)
    // A DPoP login's ticket is bound to its key: the client proves it here as at the login.
    const jkt = await this.#dpopKey(request, reply)
    // The fingerprint cookie is half of what a browser's request proves; a request proving a key carries no cookie.
    if (jkt === undefined && needsCsrfCheck(request, this.#context.refresh.csrf)) checkCsrf(request, this.#context.refresh.csrf)
    const ticket = tickets.verify(ticketToken, now)
    if (ticket === undefined) throw refuse('invalid_ticket')
    const fingerprintHash = this.#binding(request, jkt)
    if (isFingerprintRejection(fingerprintHash)) throw refuse(fingerprintHash)
    if (!safeEqual(fingerprintHash, ticket.fingerprintHash)) throw refuse('fingerprint_mismatch')
    const fingerprint = jkt === undefined ? readFingerprint(request, cookies.fingerprintName) : undefined

    const listed = await store.listUser(ticket.userId, now)
    const { deviceType } = ticket
    const active = deviceType === undefined ? listed : listed.filter((session) => deviceTypeOf(session) === deviceType)
    if (idSetHash(active.map((session) => session.id)) !== ticket.activeHash) throw refuse('stale_ticket')
    if (!displaceable(ticket, active).some((session) => session.id === revokeId)) throw refuse('unknown_session')
    const described = await this.#context.client.describe(request)
    // Signing out a session of the refused type frees no slot for a login from another.
    if (deviceType !== undefined && deviceTypeOf(described) !== deviceType) throw refuse('stale_ticket')
    // Single use, in one atomic step before anything changes: of parallel
    // requests that all passed the checks above, only the first counts 1.
    if ((await store.increment(ticket.use.key, ticket.use.windowMs, now)).count !== 1) throw refuse('used_ticket')
    const revoked = await store.revoke(revokeId, now)
    if (revoked === undefined) throw refuse('stale_ticket')
    events.publish(request.log, 'session.revoked', now, revoked, { reason: 'user' })
    const devices = this.#context.devices
    // This device as it was when the login was judged (it may be the one of the session signed out,
    // which it then carries on); the device of the session signed out is forgotten, as by any revocation but a logout.
    const recognised = await devices?.recognise(request, ticket.userId)
    await devices?.forget(revoked, request.log)
    return await this.#create(reply, ticket, described, { value: fingerprint, hash: fingerprintHash }, recognised)
  }

  /** Creates the session of a login the anomaly rules let through (with the flags they gave it). */
  async #create (reply: FastifyReply, login: Login, described: ClientInfo, fingerprint: { value: string | undefined, hash: string }, recognised: DeviceToken | undefined): Promise<IssuedSession> {
    const { events, clock, lifetimes, refreshTokens, cookies, tickets } = this.#context
    const { userId, claims, remember = false, flags, rememberDevice } = login
    const now = clock()
    const id = randomToken(SESSION_ID_BYTES)
    const refresh = refreshTokens.issue(id)
    const session = sessionRecord({
      ...described,
      ...(flags.length === 0 ? {} : { flags }),
      id,
      userId,
      fingerprintHash: fingerprint.hash,
      ...startTimes(now, lifetimeOf(lifetimes, remember)),
      remembered: remember,
      ...(claims === undefined ? {} : { claims }),
      refresh: { hash: refresh.hash, rotatedAt: now, rotations: 0 }
    })

    const result = await this.#insert(reply, session, now)
    if (!result.created) {
      // The way out: the fingerprint cookie now (none for a DPoP login), and a ticket
      // bound to it (or to the key) and to the sessions seen, with which the client
      // signs one out and logs in.
      cookies.set(reply, session, fingerprint.value, undefined, now)
      const { deviceType } = result
      const ticket = tickets.sign({
        userId, claims, remember, flags, rememberDevice, fingerprintHash: fingerprint.hash, activeHash: idSetHash(result.active.map((s) => s.id)), deviceType
      }, now)
      throw Object.assign(new SessionLimitError(), { sessions: toViews(displaceable(session, result.active)), ticket, ...(deviceType === undefined ? {} : { deviceType }) })
    }
    for (const evicted of result.evicted) {
      events.publish(reply.log, 'session.revoked', now, evicted, { reason: 'limit' })
    }
    events.publish(reply.log, 'session.created', now, session, { remembered: remember, ...(session.flags === undefined ? {} : { flags: session.flags }) })
    // Only a vouched sign-in (no flag) writes the device cookie: never a flagged or challenged attempt.
    const devices = this.#context.devices
    const deviceRemembered = devices !== undefined && flags.length === 0 && (recognised !== undefined || rememberDevice === true) &&
      await devices.remember(reply, session, recognised)
    const issued = this.#deliver(reply, session, fingerprint.value, refresh.token, now)
    if (deviceRemembered) issued.deviceRemembered = true
    return issued
  }

  /**
   * Inserts a new session under the per-user limit. A challenged login may only
   * displace challenged sessions (`displaceable`): the store refuses it at the
   * limit, and under `'evict-oldest'` the least recently active challenged
   * session is signed out here and the insert tried once more.
   */
  async #insert (reply: FastifyReply, session: SessionRecord, now: number): Promise<CreateResult> {
    const { store, events, deviceTypeLimits } = this.#context
    const limit = limitFor(session, this.#context.limit, deviceTypeLimits)
    if (!isChallenged(session)) return await store.create(session, limit, now)
    const reject: SessionLimit = {
      ...limit,
      onLimit: 'reject',
      ...(limit.deviceType === undefined ? {} : { deviceType: { ...limit.deviceType, onLimit: 'reject' } })
    }
    const first = await store.create(session, reject, now)
    if (first.created) return first
    // The limit that refused it: its type's when that was full, the total's otherwise.
    const onLimit = first.deviceType === undefined ? limit.onLimit : (limit.deviceType as DeviceTypeLimit).onLimit
    if (onLimit === 'reject') return first
    const [oldest] = displaceable(session, first.active).sort((a, b) => a.lastSeenAt - b.lastSeenAt)
    if (oldest === undefined) return first
    const evicted = await store.revoke(oldest.id, now)
    if (evicted !== undefined) events.publish(reply.log, 'session.revoked', now, evicted, { reason: 'limit' })
    return await store.create(session, reject, now)
  }

  /**
   * Trades a refresh token (with its fingerprint cookie) for a new access
   * token and a new refresh token. An older refresh token revokes the session.
   */
  async refresh (request: FastifyRequest, reply: FastifyReply): Promise<IssuedSession> {
    const { store, events, refreshTokens, cookies, clock, lifetimes, activity } = this.#context
    const policy = this.#context.refresh
    const now = clock()
    const refuse = (reason: string, session?: SessionRecord): Error => refusal(events, request.log, now, reason, session)
    // Only when the session the request's fingerprint belongs to is over do its
    // cookies go: a planted, forged or foreign token says nothing about them.
    const end = (reason: string, session: SessionRecord): Error => {
      cookies.clear(reply)
      return refuse(reason, session)
    }

    // A DPoP client proves its key instead of sending cookies: its refresh token travels in the body.
    const proving = this.#context.dpop !== undefined && DpopProofs.presented(request)
    if (!proving && policy.transport === 'cookie') {
      // No refresh cookie but a token in the body: a DPoP client that forgot its proof, which a CSRF refusal would mislead.
      if (cookies.refreshTokens(request).length === 0 && typeof bodyRefreshToken(request) === 'string') throw this.#unprovenBodyToken(request, reply, now)
      checkCsrf(request, policy.csrf)
    }
    const presented = this.#presentedRefreshTokens(request, proving)
    if (presented.length === 0) throw refuse('missing_refresh_token')
    const opened = presented.map((token) => refreshTokens.open(token)).filter((token) => token !== undefined)
    if (opened.length === 0) throw refuse('invalid_refresh_token')
    // Only for a refresh token this plugin issued is the proof checked, and its jti kept in the store:
    // a made-up token buys nobody a store write.
    const jkt = await this.#dpopKey(request, reply)
    const fingerprintHash = this.#binding(request, jkt)
    if (isFingerprintRejection(fingerprintHash)) throw refuse(fingerprintHash)

    const own = await this.#ownSession(opened, fingerprintHash, now)
    if ('reason' in own) throw refuse(own.reason, own.session)
    const { session: current, presentedHash } = own

    // The guard's rules, so a thief's refresh from elsewhere cannot silently make the session's place theirs.
    const observed = await activity.observe(request, current, now, lifetimeOf(lifetimes, current.remembered))
    if (observed.refused) throw refuse('anomaly', current)
    const successor = refreshTokens.issue(current.id)
    const result = await store.rotate(current.id, {
      presentedHash,
      successorHash: successor.hash,
      graceMs: policy.graceMs,
      activity: observed.activity
    }, now)

    switch (result.outcome) {
      case 'missing':
        throw end('unknown_session', current)
      case 'conflict':
        throw new RefreshConflictError()
      case 'reuse':
        events.publish(request.log, 'refresh.reuse_detected', now, current, {})
        events.publish(request.log, 'session.revoked', now, current, { reason: 'reuse' })
        await this.#context.devices?.forget(current, request.log)
        throw end('refresh_token_reuse', current)
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
    const { store, events, clock, refreshTokens } = this.#context
    const old = currentSession(request)
    const now = clock()
    const id = randomToken(SESSION_ID_BYTES)
    // A DPoP-bound session stays bound to its key: the key is what the client holds, not a cookie.
    const fingerprint = boundKey(old.fingerprintHash) === undefined ? createFingerprint() : { value: undefined, hash: old.fingerprintHash }
    const refresh = refreshTokens.issue(id)
    const newClaims = claims === undefined ? old.claims : checkClaims(claims)
    const session = sessionRecord({
      ...old,
      id,
      fingerprintHash: fingerprint.hash,
      lastSeenAt: now,
      ...(newClaims === undefined ? {} : { claims: newClaims }),
      refresh: { hash: refresh.hash, rotatedAt: now, rotations: 0 }
    })
    if (!await store.replace(old.id, session, now)) throw refusal(events, request.log, now, 'unknown_session', old)
    events.publish(request.log, 'session.revoked', now, old, { reason: 'regenerate' })
    events.publish(request.log, 'session.created', now, session, { remembered: old.remembered })
    request.authSession = session
    // A device remembered with the old session moves to the new one, so that revoking it still forgets the device.
    await this.#context.devices?.carry(request, reply, old, session)
    return this.#deliver(reply, session, fingerprint.value, refresh.token, now)
  }

  /** Revokes the request's session and clears its cookies (logout). */
  async end (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { store, events, clock, cookies } = this.#context
    const session = currentSession(request)
    const now = clock()
    const revoked = await store.revoke(session.id, now)
    if (revoked !== undefined) {
      events.publish(request.log, 'session.revoked', now, session, { reason: 'user' })
    }
    cookies.clear(reply)
    request.authSession = null
  }

  #deliver (reply: FastifyReply, session: SessionRecord, fingerprint: string | undefined, refreshToken: string, now: number): IssuedSession {
    const { cookies, accessTokens } = this.#context
    const accessToken = accessTokens.sign(session, now)
    // A DPoP-bound session gets no cookie: its refresh token, bound to the same key, goes in the body.
    if (boundKey(session.fingerprintHash) !== undefined) return { accessToken, refreshToken, tokenType: 'DPoP', session }
    cookies.set(reply, session, fingerprint, refreshToken, now)
    const issued: IssuedSession = { accessToken, tokenType: 'Bearer', session }
    cookies.setAccess(reply, accessToken, now)
    if (this.#context.refresh.transport === 'body') issued.refreshToken = refreshToken
    return issued
  }

  /**
   * A cookie refresh with its token in the body and no proof: with `dpop`
   * on, the 400 that tells a DPoP client its proof is missing (and that
   * a body refresh token needs one); with it off, the usual 401.
   */
  #unprovenBodyToken (request: FastifyRequest, reply: FastifyReply, now: number): Error {
    const { dpop, events } = this.#context
    if (dpop === undefined) return refusal(events, request.log, now, 'missing_refresh_token')
    dpop.challenge(reply, 'dpop_missing_proof', now, 'a refresh token in the body needs a DPoP proof')
    events.publish(request.log, 'auth.rejected', now, undefined, { reason: 'dpop_missing_proof' })
    return new InvalidDpopProofError()
  }

  /** The refresh tokens the request presents: in the body (always, from a DPoP client), or in every refresh cookie it carries. */
  #presentedRefreshTokens (request: FastifyRequest, dpop: boolean): string[] {
    const tokens: unknown[] = this.#context.refresh.transport === 'cookie' && !dpop
      ? this.#context.cookies.refreshTokens(request)
      : [bodyRefreshToken(request)]
    return tokens.filter((token): token is string => typeof token === 'string' && token.length <= MAX_REFRESH_TOKEN_LENGTH)
  }

  /**
   * The session a refresh is for: the one whose fingerprint the request
   * carries. A client sends one refresh token, but a sibling subdomain can
   * plant more cookies of the name, sent first; each token is only a
   * candidate, so a planted one can neither stand in for the client's own nor
   * make its refresh fail. Of several tokens of that session, the newest it
   * knows (the unused successor, then the current one): an older one beside it
   * was planted or is stale, and must neither revoke the session nor hold up
   * its refresh as a parallel one.
   */
  async #ownSession (tokens: OpenedRefreshToken[], fingerprintHash: string, now: number): Promise<{ session: SessionRecord, presentedHash: string } | { reason: string, session?: SessionRecord }> {
    let foreign: SessionRecord | undefined
    for (const sessionId of new Set(tokens.map((token) => token.sessionId))) {
      const session = await this.#context.store.get(sessionId, now)
      if (session === undefined) continue
      if (!safeEqual(session.fingerprintHash, fingerprintHash)) {
        foreign ??= session
        continue
      }
      const hashes = tokens.filter((token) => token.sessionId === sessionId).map((token) => token.hash)
      const newest = [session.refresh?.nextHash, session.refresh?.hash].find((hash) => hash !== undefined && hashes.includes(hash))
      return { session, presentedHash: newest ?? hashes[0] as string }
    }
    return foreign === undefined ? { reason: 'unknown_session' } : { reason: 'fingerprint_mismatch', session: foreign }
  }
}

/** The request's authenticated session; only after the guard ran. */
function currentSession (request: FastifyRequest): SessionRecord {
  const session = request.authSession
  if (session === null) throw new NoSessionError()
  return session
}

function validateInput (input: IssueSessionInput): IssueSessionInput {
  if (typeof input !== 'object' || input === null) throw new TypeError('issueSession() takes { userId, claims?, remember?, rememberDevice? }')
  const { userId, remember, rememberDevice } = input
  if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH || !isStorable(userId)) {
    throw new TypeError(`issueSession(): userId must be a non-empty string of at most ${MAX_USER_ID_LENGTH} characters, without U+0000 or an unpaired surrogate`)
  }
  if (remember !== undefined && typeof remember !== 'boolean') throw new TypeError('issueSession(): remember must be a boolean')
  if (rememberDevice !== undefined && typeof rememberDevice !== 'boolean') throw new TypeError('issueSession(): rememberDevice must be a boolean')
  const claims = input.claims === undefined ? undefined : checkClaims(input.claims)
  return { userId, claims, remember, rememberDevice }
}
