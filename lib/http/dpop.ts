import { hkdfSync } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { hmac, safeEqual, sha256 } from '../crypto.js'
import { InvalidDpopProofError, InvalidOptionError, UseDpopNonceError } from '../errors.js'
import type { Clock } from '../session.js'
import type { SessionStore } from '../stores/store.js'
import type { MacKey } from '../tokens/jwt.js'
import { bool, duration, origins, section, shown, type Duration, type OptionNames } from '../validate.js'

/**
 * DPoP (RFC 9449) for native apps: a login that carries a `DPoP` proof gets a
 * session bound to the key's JWK thumbprint instead of a fingerprint cookie.
 * Every request then presents `Authorization: DPoP <token>` and a fresh proof
 * made by that key. The transport is chosen per request: browsers keep the
 * cookies, DPoP clients get bound tokens, in one API.
 */

/** The asymmetric algorithms a proof may be signed with. */
export type DpopAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'Ed25519' | 'PS256' | 'PS384' | 'PS512' | 'RS256' | 'RS384' | 'RS512'

const ALGORITHMS: ReadonlySet<string> = new Set<DpopAlgorithm>(['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'])

export interface DpopOptions {
  /**
   * The algorithms a proof may be signed with: asymmetric only (a symmetric
   * `alg`, or a private key in the proof's `jwk`, is always refused).
   * @default ['ES256', 'EdDSA']
   */
  algorithms?: DpopAlgorithm[]
  /**
   * How old a proof may be: its `iat` at most this far behind the server's
   * clock. Ahead, an `iat` may be `clockTolerance` (at least 5 s, at most the
   * window). Its `jti` is remembered (in the store, so across instances) for
   * as long as a proof may be accepted, and kept one hour longer, the store's
   * clock-skew allowance. At most `'5m'`.
   * @default '60s'
   */
  window?: Duration
  /**
   * Require server nonces: a proof must carry a `nonce` the server gave in a
   * `DPoP-Nonce` header. Nonces are stateless (an HMAC of a time step, keyed by
   * the current MAC key) and live for one to two `window`s.
   * @default false
   */
  nonce?: boolean
  /**
   * The public origins of the API (`['https://api.example.com']`), as clients
   * name them in a proof's `htu`. When set, `htu` must be one of them followed
   * by the request's path (the query and fragment ignored), whatever the
   * request's `Host` or, under `trustProxy`, its `X-Forwarded-*` headers say.
   * Set it in production: without it the origin is read from those headers,
   * which the client chooses, so a proof made for one host name is accepted
   * under any other that reaches the same server.
   * @default the request's own origin (`request.protocol` and `request.host`)
   */
  origins?: string[]
}

const DPOP_OPTION_NAMES: OptionNames<DpopOptions> = { algorithms: true, window: true, nonce: true, origins: true }

/** The `dpop` option after validation: `undefined` when off. */
export interface DpopPolicy {
  readonly algorithms: readonly string[]
  readonly windowMs: number
  readonly nonce: boolean
  /** The origins a proof's `htu` may name; `undefined`: the request's own. */
  readonly origins: ReadonlySet<string> | undefined
}

export function parseDpopOptions (value: boolean | DpopOptions | undefined): DpopPolicy | undefined {
  if (value === undefined || (typeof value !== 'object' && !bool(value, 'dpop'))) return undefined
  const options = section(value === true ? undefined : value as DpopOptions, DPOP_OPTION_NAMES, 'dpop')
  const algorithms = options.algorithms ?? ['ES256', 'EdDSA']
  if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((alg) => ALGORITHMS.has(alg))) {
    throw new InvalidOptionError('dpop.algorithms', `must be a non-empty array of ${[...ALGORITHMS].join(', ')}`)
  }
  return {
    algorithms: Object.freeze([...algorithms]),
    windowMs: dpopWindow(options.window ?? '60s'),
    nonce: options.nonce === undefined ? false : bool(options.nonce, 'dpop.nonce'),
    origins: options.origins === undefined ? undefined : publicOrigins(options.origins)
  }
}

const MAX_WINDOW_MS = 5 * 60_000

function dpopWindow (value: Duration): number {
  const ms = duration(value, 'dpop.window')
  if (ms > MAX_WINDOW_MS) throw new InvalidOptionError('dpop.window', `must be at most '5m': a proof (stolen, or logged on the way) is good for that long, and each proof's jti is held in the store as long, got ${shown(value)}`)
  return ms
}

function publicOrigins (value: unknown): ReadonlySet<string> {
  const list = origins(value, 'dpop.origins')
  // An empty list would fall back to the request's Host: say so rather than do it.
  if (list.length === 0) throw new InvalidOptionError('dpop.origins', 'must list at least one origin (leave it out to use the request\'s own)')
  return new Set(list)
}

/** What a session bound to a DPoP key keeps in `fingerprintHash`: the prefix and the key's thumbprint. */
const BINDING_PREFIX = 'dpop:'

export function dpopBinding (jkt: string): string {
  return BINDING_PREFIX + jkt
}

/** The thumbprint of a DPoP-bound session's key, or `undefined` for a cookie-bound one. */
export function boundKey (fingerprintHash: string): string | undefined {
  return fingerprintHash.startsWith(BINDING_PREFIX) ? fingerprintHash.slice(BINDING_PREFIX.length) : undefined
}

/** Why a proof was refused (for logs and events, never for the client). */
export type DpopRejection =
  | 'dpop_missing_proof'
  | 'dpop_invalid_proof'
  | 'dpop_htm_mismatch'
  | 'dpop_htu_mismatch'
  | 'dpop_stale_proof'
  | 'dpop_ath_mismatch'
  | 'dpop_key_mismatch'
  | 'dpop_nonce_required'
  | 'dpop_replay'

/**
 * The `error_description` of each refusal: fixed words about the check that
 * failed, so a client's developer sees which claim to fix, and nothing of the
 * request is repeated.
 */
export const DPOP_DESCRIPTIONS: Readonly<Record<DpopRejection | 'dpop_bound_token', string>> = {
  dpop_missing_proof: 'no DPoP proof',
  dpop_invalid_proof: 'the proof is malformed, badly signed, not a dpop+jwt, or lacks jti or iat',
  dpop_htm_mismatch: 'htm is not the request method',
  dpop_htu_mismatch: 'htu is not the request URL',
  dpop_stale_proof: 'iat is outside the accepted window',
  dpop_ath_mismatch: 'ath is not the hash of the access token',
  dpop_key_mismatch: 'the proof is signed by another key than the token is bound to',
  dpop_nonce_required: 'a server nonce is required',
  dpop_replay: 'the proof was already used',
  dpop_bound_token: 'the token is presented with another scheme than its binding'
}

/** A proof that passed: the thumbprint of its key, and whether its nonce is about to expire. */
export interface VerifiedProof {
  readonly jkt: string
  /** A fresh nonce should go back with the answer (the proof's is from the previous step). */
  readonly renewNonce: boolean
}

/** Longest `DPoP` header looked at. */
const MAX_PROOF_LENGTH = 8192
const MAX_JTI_LENGTH = 256
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const DPOP_AUTHORIZATION = /^DPoP +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i
const MAX_AUTHORIZATION_LENGTH = 8192

/** The access token of `Authorization: DPoP <jwt>`, or `undefined` for any other header (or none). */
export function readDpopToken (request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization
  if (authorization === undefined || authorization.length > MAX_AUTHORIZATION_LENGTH) return undefined
  return DPOP_AUTHORIZATION.exec(authorization)?.[1]
}

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } })
let jose: Promise<Jose> | undefined
/** `jose` is an ES module: loaded once, on the first proof. */
async function loadJose (): Promise<Jose> {
  jose ??= import('jose')
  return await jose
}

interface DpopContext {
  readonly store: Pick<SessionStore, 'increment'>
  readonly clock: Clock
  /** The current MAC key keys the nonces. */
  readonly macKey: MacKey
  /** The tokens' `clockTolerance`: how far ahead a proof's `iat` may be, at least `MIN_FUTURE_IAT_MS`. */
  readonly clockToleranceMs: number
}

/** How far ahead of the server's clock a proof's `iat` may always be (client clocks run a little fast), unless the window is shorter. */
const MIN_FUTURE_IAT_MS = 5000

/** Verifies DPoP proofs (RFC 9449 §4.3) and issues server nonces. */
export class DpopProofs {
  readonly #store: Pick<SessionStore, 'increment'>
  readonly #policy: DpopPolicy
  readonly #nonceKey: Buffer
  /** How far ahead a proof's `iat` may be. */
  readonly #futureMs: number
  /** The `algs` of every challenge. */
  readonly algs: string

  constructor ({ store, macKey, clockToleranceMs }: DpopContext, policy: DpopPolicy) {
    this.#store = store
    this.#policy = policy
    this.#futureMs = Math.min(policy.windowMs, Math.max(clockToleranceMs, MIN_FUTURE_IAT_MS))
    this.#nonceKey = Buffer.from(hkdfSync('sha256', macKey.material, '', 'fastify-session-guard dpop nonce', 32))
    this.algs = policy.algorithms.join(' ')
  }

  /** Whether the request carries a `DPoP` header (a DPoP client, at login or refresh). */
  static presented (request: FastifyRequest): boolean {
    return request.headers.dpop !== undefined
  }

  /** A nonce for the current time step. */
  nonce (now: number): string {
    const step = String(Math.floor(now / this.#policy.windowMs))
    return `${step}.${hmac(this.#nonceKey, step)}`
  }

  /** 0 for a nonce of the current step, 1 of the previous one, `undefined` for anything else. */
  #nonceAge (nonce: unknown, now: number): number | undefined {
    if (typeof nonce !== 'string') return undefined
    const dot = nonce.indexOf('.')
    const step = nonce.slice(0, dot)
    if (dot === -1 || !safeEqual(nonce.slice(dot + 1), hmac(this.#nonceKey, step))) return undefined
    const age = Math.floor(now / this.#policy.windowMs) - Number(step)
    return age === 0 || age === 1 ? age : undefined
  }

  /**
   * Checks the request's proof: signed by the public key in its header with an
   * allowed algorithm, typed `dpop+jwt`, for this method and URL (without query
   * and fragment), issued within the window, bound to the access token (`ath`)
   * when one is presented, made by the expected key, with a valid nonce when
   * nonces are required, and never seen before (its `jti`, through the store).
   */
  async verify (request: FastifyRequest, now: number, bound: { accessToken?: string, jkt?: string } = {}): Promise<VerifiedProof | DpopRejection> {
    const header = request.headers.dpop
    if (header === undefined) return 'dpop_missing_proof'
    // One proof: a header sent twice reaches us as an array, or joined with commas.
    if (typeof header !== 'string' || header.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(header)) return 'dpop_invalid_proof'
    const { jwtVerify, EmbeddedJWK, calculateJwkThumbprint } = await loadJose()
    let payload, jwk
    try {
      // EmbeddedJWK refuses a `jwk` that is not a public key (a private or a symmetric one).
      const verified = await jwtVerify(header, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...this.#policy.algorithms], currentDate: new Date(now) })
      payload = verified.payload
      jwk = verified.protectedHeader.jwk
    } catch {
      return 'dpop_invalid_proof'
    }
    const { jti, htm, htu, iat, ath } = payload
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH || typeof iat !== 'number') return 'dpop_invalid_proof'
    if (htm !== request.method) return 'dpop_htm_mismatch'
    if (!sameResource(htu, request, this.#policy.origins)) return 'dpop_htu_mismatch'
    // RFC 9449 §11.1: a proof dated ahead is accepted only within the future tolerance.
    if (now - iat * 1000 > this.#policy.windowMs || iat * 1000 - now > this.#futureMs) return 'dpop_stale_proof'
    if (bound.accessToken !== undefined && (typeof ath !== 'string' || !safeEqual(ath, sha256(bound.accessToken)))) return 'dpop_ath_mismatch'
    const jkt = await calculateJwkThumbprint(jwk!, 'sha256')
    if (bound.jkt !== undefined && !safeEqual(jkt, bound.jkt)) return 'dpop_key_mismatch'
    const nonceAge = this.#policy.nonce ? this.#nonceAge(payload.nonce, now) : 0
    if (nonceAge === undefined) return 'dpop_nonce_required'
    // Last, so only an otherwise good proof writes to the store. A proof is accepted
    // from `futureMs` before its iat to `windowMs` after it, by any instance's clock:
    // its jti counts that long, and 1 ms more (a counter ends on its deadline, the
    // proof is still good on it). The store keeps it past the clock-skew allowance.
    const use = await this.#store.increment(`dpop-jti:${sha256(`${jkt} ${jti}`)}`, this.#policy.windowMs + this.#futureMs + 1, now)
    if (use.count !== 1) return 'dpop_replay'
    return { jkt, renewNonce: nonceAge === 1 }
  }

  /**
   * The challenge of a refused request to a protected resource (RFC 9449 §7.1):
   * `use_dpop_nonce` with a fresh `DPoP-Nonce`, `invalid_token` for a token
   * presented with the wrong scheme, `invalid_dpop_proof` for a bad proof;
   * with an `error_description` (RFC 6750 §3) that names the check, one of
   * `DPOP_DESCRIPTIONS` (never the client's text), unless `description` replaces it.
   */
  challenge (reply: FastifyReply, reason: DpopRejection | 'dpop_bound_token', now: number, description: string = DPOP_DESCRIPTIONS[reason]): void {
    if (reason === 'dpop_nonce_required') reply.header('dpop-nonce', this.nonce(now))
    const error = reason === 'dpop_nonce_required' ? 'use_dpop_nonce' : reason === 'dpop_bound_token' ? 'invalid_token' : 'invalid_dpop_proof'
    reply.header('www-authenticate', `DPoP algs="${this.algs}", error="${error}", error_description="${description}"`)
  }

  /**
   * The challenge of a request presented as `DPoP` whose token or session is
   * refused for any other reason (expired, revoked …): the scheme it used,
   * and no description, like the Bearer one (RFC 9449 §7.1).
   */
  refuseToken (reply: FastifyReply): void {
    reply.header('www-authenticate', `DPoP algs="${this.algs}", error="invalid_token"`)
  }

  /**
   * The proof of a login or a refresh (the token endpoint, RFC 9449 §5): its
   * key's thumbprint, or, with the challenge set, why it is refused and the
   * 400 to throw (`invalid_dpop_proof`, or `use_dpop_nonce` with a fresh `DPoP-Nonce`).
   */
  async atTokenEndpoint (request: FastifyRequest, reply: FastifyReply, now: number): Promise<{ jkt: string, reason?: undefined } | { reason: DpopRejection, error: Error }> {
    const verified = await this.verify(request, now)
    if (typeof verified !== 'string') {
      if (verified.renewNonce) reply.header('dpop-nonce', this.nonce(now))
      return { jkt: verified.jkt }
    }
    this.challenge(reply, verified, now)
    return { reason: verified, error: verified === 'dpop_nonce_required' ? new UseDpopNonceError() : new InvalidDpopProofError() }
  }
}

/**
 * `htu` names the request's URL (RFC 9449 §4.3), query and fragment ignored:
 * one of the configured `origins` (or, without them, the origin the request's
 * `Host` and protocol name) and the request's path. The one rule of every
 * proof: at a call to a protected route, a login, a refresh and resolve-limit.
 */
function sameResource (htu: unknown, request: FastifyRequest, allowed: ReadonlySet<string> | undefined): boolean {
  if (typeof htu !== 'string') return false
  const query = request.url.indexOf('?')
  const path = query === -1 ? request.url : request.url.slice(0, query)
  let claimed, actual
  try {
    claimed = new URL(htu)
    // With `origins`, the request's Host plays no part: its path is read under the origin the proof names.
    actual = new URL(`${allowed === undefined ? `${request.protocol}://${request.host}` : claimed.origin}${path}`)
  } catch {
    return false
  }
  return (allowed === undefined || allowed.has(claimed.origin)) && claimed.origin === actual.origin && claimed.pathname === actual.pathname
}

/**
 * The guard's check of a request whose token is DPoP-bound or presented as
 * `DPoP`: the scheme and the token's `cnf.jkt` must agree (a bound token
 * presented as `Bearer` is refused, RFC 9449 §7.2, and so is a cookie-bound
 * one presented as `DPoP`), and the proof must be good for this request, this
 * token and that key. Returns why it is refused (after setting the DPoP
 * challenge), or `undefined`.
 */
export async function checkDpopRequest (
  proofs: DpopProofs | undefined,
  request: FastifyRequest,
  reply: FastifyReply,
  { token, claims, scheme, now }: { token: string, claims: { fph: string, cnf?: { jkt: string } }, scheme: 'bearer' | 'dpop', now: number }
): Promise<string | undefined> {
  const jkt = claims.cnf?.jkt
  // `dpop` off: a bound token cannot be checked, so it is refused with the usual Bearer challenge.
  if (proofs === undefined) return 'dpop_bound_token'
  if (scheme !== 'dpop' || typeof jkt !== 'string' || boundKey(claims.fph) !== jkt) {
    proofs.challenge(reply, 'dpop_bound_token', now)
    return 'dpop_bound_token'
  }
  const verified = await proofs.verify(request, now, { accessToken: token, jkt })
  if (typeof verified === 'string') {
    proofs.challenge(reply, verified, now)
    return verified
  }
  if (verified.renewNonce) reply.header('dpop-nonce', proofs.nonce(now))
  return undefined
}
