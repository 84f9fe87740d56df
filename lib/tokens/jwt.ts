import fastifyJwt, { type JWT } from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { duration, type Duration } from '../validate.js'

/**
 * Token verification in one place: the signing options, their checks, and the
 * plugin's private `@fastify/jwt` instance configured from them (algorithm
 * pinned, issuer and audience required when set, time checked against the
 * injected clock). Access tokens and limit tickets are both `TimedJwt`s.
 */

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512'
export type AsymmetricAlgorithm =
  | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

/** The top-level options that say how access tokens are signed and checked. */
export interface TokenOptions {
  /**
   * HMAC secret for access tokens, at least 32 bytes. Give this or `keys`.
   */
  secret?: string | Buffer
  /**
   * PEM key pair for an asymmetric `algorithm`. Give this or `secret`.
   */
  keys?: { private: string | Buffer, public: string | Buffer }
  /**
   * The one algorithm access tokens are signed and verified with. Must be an
   * HMAC algorithm with `secret`, and an asymmetric one with `keys`.
   * @default 'HS256' with `secret`; required with `keys`
   */
  algorithm?: HmacAlgorithm | AsymmetricAlgorithm
  /** `iss` claim to sign, and to require when verifying. */
  issuer?: string
  /** `aud` claim to sign, and to require when verifying. */
  audience?: string
  /**
   * Lifetime of an access token. Keep it short: refresh tokens renew it.
   * @default '15m'
   */
  accessTokenTtl?: Duration
  /**
   * Tolerance for clock skew when checking an access token's `exp`.
   * @default 0
   */
  clockTolerance?: Duration
}

export const TOKEN_OPTION_NAMES = {
  secret: true, keys: true, algorithm: true, issuer: true, audience: true, accessTokenTtl: true, clockTolerance: true
} as const satisfies Record<keyof TokenOptions, true>

/** The token options after validation. */
export interface TokenPolicy {
  readonly algorithm: HmacAlgorithm | AsymmetricAlgorithm
  readonly signKey: string | Buffer
  readonly verifyKey: string | Buffer
  readonly issuer: string | undefined
  readonly audience: string | undefined
  readonly accessTokenTtlMs: number
  readonly clockToleranceMs: number
}

const DEFAULT_ACCESS_TOKEN_TTL = '15m'
const MIN_SECRET_BYTES = 32
const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512'])
const ASYMMETRIC_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])
const JWT_NAMESPACE = 'sessionGuard'

export function parseTokenOptions (options: TokenOptions): TokenPolicy {
  const { secret, keys, issuer, audience } = options
  if (issuer !== undefined && (typeof issuer !== 'string' || issuer === '')) {
    throw new InvalidOptionError('issuer', 'must be a non-empty string')
  }
  if (audience !== undefined && (typeof audience !== 'string' || audience === '')) {
    throw new InvalidOptionError('audience', 'must be a non-empty string')
  }
  const times = {
    accessTokenTtlMs: duration(options.accessTokenTtl ?? DEFAULT_ACCESS_TOKEN_TTL, 'accessTokenTtl'),
    clockToleranceMs: duration(options.clockTolerance ?? 0, 'clockTolerance', { allowZero: true })
  }
  if (secret !== undefined && keys !== undefined) {
    throw new InvalidOptionError('secret', 'give either `secret` or `keys`, not both')
  }
  if (keys !== undefined) {
    const algorithm = options.algorithm
    if (algorithm === undefined || !ASYMMETRIC_ALGORITHMS.has(algorithm)) {
      throw new InvalidOptionError('algorithm', `must name the asymmetric algorithm of \`keys\` (${[...ASYMMETRIC_ALGORITHMS].join(', ')})`)
    }
    if (typeof keys !== 'object' || keys === null || !isKey(keys.private) || !isKey(keys.public)) {
      throw new InvalidOptionError('keys', 'must hold non-empty PEM `private` and `public` keys')
    }
    return { algorithm, signKey: keys.private, verifyKey: keys.public, issuer, audience, ...times }
  }
  if (secret === undefined) {
    throw new InvalidOptionError('secret', 'is required (or `keys` with an asymmetric `algorithm`)')
  }
  if (!isKey(secret) || Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    throw new InvalidOptionError('secret', `must be a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
  }
  if (looksLikeKey(secret)) {
    // An HMAC keyed with a public key lets anyone who has that key sign tokens.
    throw new InvalidOptionError('secret', 'looks like a PEM or JWK key: give key pairs as `keys` with an asymmetric `algorithm`')
  }
  const algorithm = options.algorithm ?? 'HS256'
  if (!HMAC_ALGORITHMS.has(algorithm)) {
    throw new InvalidOptionError('algorithm', 'must be HS256, HS384 or HS512 with `secret`')
  }
  return { algorithm, signKey: secret, verifyKey: secret, issuer, audience, ...times }
}

/** A PEM block (key or certificate) or a JWK, as text. */
function looksLikeKey (secret: string | Buffer): boolean {
  const text = Buffer.isBuffer(secret) ? secret.toString('latin1') : secret
  return text.includes('-----BEGIN') || /^\s*\{[\s\S]*"kty"/.test(text)
}

function isKey (value: unknown): value is string | Buffer {
  return (typeof value === 'string' || Buffer.isBuffer(value)) && value.length > 0
}

/**
 * Registers @fastify/jwt in a child context of its own and under a namespace,
 * so it never clashes with an @fastify/jwt the app registers itself, before or
 * after this plugin (when the app's comes first, ours is `app.jwt.sessionGuard`).
 * Returns its signer and verifier, with the algorithm pinned.
 */
export async function registerJwt (fastify: FastifyInstance, policy: TokenPolicy): Promise<JWT> {
  const { algorithm, signKey, verifyKey, issuer, audience } = policy
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
          // Expiry is checked against the injected clock by the TimedJwt subclasses.
          ignoreExpiration: true,
          ignoreNotBefore: true
        }
      })
    } catch (err) {
      // fast-jwt checks that the keys fit the algorithm (a secret is fully checked above);
      // its refusal names our option, like every other.
      throw new InvalidOptionError('keys', (err as Error).message)
    }
    jwt = (child.jwt as unknown as Record<string, JWT>)[JWT_NAMESPACE]
  })
  return jwt as JWT
}

/**
 * A JWT of fixed lifetime through the plugin's own `@fastify/jwt` instance,
 * with the algorithm pinned. `iat` and `exp` come from the injected clock, and
 * expiry is checked by the subclasses against it (the verifier is told to skip
 * it), so one clock rules all.
 */
export abstract class TimedJwt {
  readonly #jwt: JWT
  readonly #ttlSeconds: number

  constructor (jwt: JWT, ttlMs: number) {
    this.#jwt = jwt
    this.#ttlSeconds = Math.ceil(ttlMs / 1000)
  }

  /** How long a token lives. */
  protected get lifetimeMs (): number {
    return this.#ttlSeconds * 1000
  }

  protected signClaims (claims: Record<string, unknown>, now: number): string {
    const iat = Math.floor(now / 1000)
    return this.#jwt.sign({ ...claims, iat, exp: iat + this.#ttlSeconds })
  }

  /** The verified payload, or `undefined` for a bad signature, algorithm, issuer or audience. */
  protected payload (token: string): Record<string, unknown> | undefined {
    // The last base64url character of a signature has unused low bits, and the
    // verifier decodes them away: without this check a token would have several
    // spellings, and anything keyed on the token string could be sidestepped.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) return undefined
    try {
      // fast-jwt refuses a token whose payload is not a JSON object.
      return this.#jwt.verify<Record<string, unknown>>(token)
    } catch {
      return undefined
    }
  }
}
