import { hkdfSync } from 'node:crypto'
import { createDecoder, createSigner, createVerifier } from 'fast-jwt'
import { InvalidOptionError } from '../errors.js'
import { duration, shown, type Duration } from '../validate.js'

/**
 * Token keys in one place: the signing options, their checks, the keyrings
 * (signing keys by `kid`, MAC keys by version), and the plugin's own signers
 * and verifiers (fast-jwt; algorithm pinned, key chosen by `kid`, issuer and
 * audience required when set, time checked against the injected clock).
 * Access tokens and limit tickets are both `TimedJwt`s.
 */

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512'
export type AsymmetricAlgorithm =
  | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

/** One PEM key pair for an asymmetric `algorithm`. */
export interface KeyPair {
  private: string | Buffer
  public: string | Buffer
}

/**
 * One signing key of a keyring. The first entry signs; every entry verifies
 * the tokens that name its `kid`. An entry holds a `secret` (HMAC algorithms),
 * or a `public` key and, on the first entry, its `private` key (asymmetric).
 */
export interface SigningKeyEntry {
  /** The key id written in the header of every token this key signs: 1 to 64 of `A-Z a-z 0-9 _ -`. */
  kid: string
  /** HMAC secret, at least 32 bytes. */
  secret?: string | Buffer
  /** PEM private key: needed on the first entry only, which signs. */
  private?: string | Buffer
  /** PEM public key. */
  public?: string | Buffer
}

/** One version of the key material of the plugin's MACs (refresh tokens, remembered devices, store key names). */
export interface MacKeyEntry {
  /** The version written in every token this key MACs: 1 to 64 of `A-Z a-z 0-9 _ -`. */
  kid: string
  /** At least 32 bytes. */
  secret: string | Buffer
}

/** The top-level options that say how tokens are signed and checked. */
export interface TokenOptions {
  /**
   * HMAC secret for access tokens, at least 32 bytes. Give this or `keys`.
   * The same as `keys: [{ kid: 'default', secret }]`.
   */
  secret?: string | Buffer
  /**
   * A PEM key pair for an asymmetric `algorithm` (the same as
   * `keys: [{ kid: 'default', ...pair }]`), or a keyring: the first entry
   * signs, every entry verifies the tokens that name its `kid`, so tokens
   * signed with an older key pass until they expire. A keyring needs `macKeys`.
   * Give this or `secret`.
   */
  keys?: KeyPair | SigningKeyEntry[]
  /**
   * The key material of the refresh-token and remembered-device MACs and of the
   * store's key names, apart from the signing keys so that rotating those logs
   * nobody out. The first entry MACs new tokens; every entry checks the tokens
   * that name its `kid`. Required with a keyring in `keys`.
   * @default the `secret`, or the private key of `keys`, as version `default`
   */
  macKeys?: MacKeyEntry[]
  /**
   * The one algorithm tokens are signed and verified with. Must be an HMAC
   * algorithm with secrets, and an asymmetric one with key pairs.
   * @default 'HS256' with secrets; required with key pairs
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
   * Tolerance for clock skew when checking an access token's `exp`; with
   * `dpop`, also how far ahead of the server's clock a proof's `iat` may be
   * (at least 5 s, at most `dpop.window`). At most `'5m'`.
   * @default 0
   */
  clockTolerance?: Duration
}

/** Clocks kept by NTP are within a second; more than this only lengthens every token. */
const MAX_CLOCK_TOLERANCE_MS = 5 * 60_000

export const TOKEN_OPTION_NAMES = {
  secret: true, keys: true, macKeys: true, algorithm: true, issuer: true, audience: true, accessTokenTtl: true, clockTolerance: true
} as const satisfies Record<keyof TokenOptions, true>

/** A signing key, ready for fast-jwt: HMAC keys already derived under the plugin's label. */
export interface SigningKey {
  readonly kid: string
  /** Only on the current key. */
  readonly signKey?: string | Buffer
  readonly verifyKey: string | Buffer
}

/** A MAC key version: what the MAC keys of each kind of token are derived from. */
export interface MacKey {
  readonly kid: string
  readonly material: string | Buffer
}

/** What the store's key names are derived from; a private key counts by its PKCS#8 DER bytes. */
export interface KeyNameMaterial {
  readonly material: string | Buffer
  readonly privateKey: boolean
}

/** The token options after validation. */
export interface TokenPolicy {
  readonly algorithm: HmacAlgorithm | AsymmetricAlgorithm
  /** The first key signs. */
  readonly signingKeys: readonly SigningKey[]
  /** The first version MACs. */
  readonly macKeys: readonly MacKey[]
  /** What the store's key names are derived from: the current MAC key, or the one private key. */
  readonly keyNames: KeyNameMaterial
  readonly issuer: string | undefined
  readonly audience: string | undefined
  readonly accessTokenTtlMs: number
  readonly clockToleranceMs: number
}

/** The key id of a single `secret` or key pair, and the version of MAC keys derived from them. */
export const DEFAULT_KID = 'default'
const DEFAULT_ACCESS_TOKEN_TTL = '15m'
const MIN_SECRET_BYTES = 32
const KID = /^[A-Za-z0-9_-]{1,64}$/
const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512'])
const ASYMMETRIC_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])

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
  if (times.clockToleranceMs > MAX_CLOCK_TOLERANCE_MS) {
    throw new InvalidOptionError('clockTolerance', `must be at most '5m': every token would be good that long past its expiry, got ${shown(options.clockTolerance)}`)
  }
  if (secret !== undefined && keys !== undefined) {
    throw new InvalidOptionError('secret', 'give either `secret` or `keys`, not both')
  }
  if (secret === undefined && keys === undefined) {
    throw new InvalidOptionError('secret', 'is required (or `keys` with an asymmetric `algorithm`)')
  }
  if (Array.isArray(keys) && keys.length === 0) throw new InvalidOptionError('keys', 'must hold at least one key')
  // The first key says which kind the ring holds; an entry of the other kind is refused below.
  const first: unknown = Array.isArray(keys) ? keys[0] : undefined
  const hmac = secret !== undefined || (typeof first === 'object' && first !== null && (first as SigningKeyEntry).secret !== undefined)
  const algorithm = options.algorithm ?? (hmac ? 'HS256' : undefined)
  if (hmac && !HMAC_ALGORITHMS.has(algorithm as string)) {
    throw new InvalidOptionError('algorithm', `must be HS256, HS384 or HS512 with \`${secret === undefined ? 'keys' : 'secret'}\``)
  }
  if (!hmac && (algorithm === undefined || !ASYMMETRIC_ALGORITHMS.has(algorithm))) {
    throw new InvalidOptionError('algorithm', `must name the asymmetric algorithm of \`keys\` (${[...ASYMMETRIC_ALGORITHMS].join(', ')})`)
  }
  const ring: SigningKeyEntry[] = Array.isArray(keys)
    ? keys
    : [secret === undefined ? { kid: DEFAULT_KID, ...pairOf(keys) } : { kid: DEFAULT_KID, secret }]
  const signingKeys = parseRing(ring, algorithm as HmacAlgorithm | AsymmetricAlgorithm, secret !== undefined)
  const macKeys = options.macKeys === undefined ? undefined : parseMacKeys(options.macKeys)
  if (macKeys === undefined && Array.isArray(keys)) {
    throw new InvalidOptionError('macKeys', 'is required with a keyring in `keys`, so that rotating a signing key logs nobody out')
  }
  // Without `macKeys`, the MAC keys come from the one secret or private key as
  // before keyrings existed, so upgrading keeps every refresh token valid.
  const material = secret ?? ((ring[0] as SigningKeyEntry).private as string | Buffer)
  return {
    algorithm: algorithm as HmacAlgorithm | AsymmetricAlgorithm,
    signingKeys,
    macKeys: macKeys ?? [{ kid: DEFAULT_KID, material }],
    keyNames: macKeys === undefined ? { material, privateKey: secret === undefined } : { material: (macKeys[0] as MacKey).material, privateKey: false },
    issuer,
    audience,
    ...times
  }
}

function pairOf (keys: unknown): KeyPair {
  if (typeof keys !== 'object' || keys === null || !isKey((keys as KeyPair).private) || !isKey((keys as KeyPair).public)) {
    throw new InvalidOptionError('keys', 'must hold non-empty PEM `private` and `public` keys')
  }
  return keys as KeyPair
}

function parseRing (ring: SigningKeyEntry[], algorithm: HmacAlgorithm | AsymmetricAlgorithm, single: boolean): SigningKey[] {
  const seen = new Set<string>()
  return ring.map((entry, index) => {
    const at = `keys[${index}]`
    if (typeof entry !== 'object' || entry === null) throw new InvalidOptionError(at, 'must be an object with a `kid`')
    const { kid } = entry
    if (typeof kid !== 'string' || !KID.test(kid)) throw new InvalidOptionError(`${at}.kid`, 'must be 1 to 64 characters of A-Z a-z 0-9 _ -')
    if (seen.has(kid)) throw new InvalidOptionError(`${at}.kid`, `repeats the kid ${JSON.stringify(kid)}`)
    seen.add(kid)
    if (HMAC_ALGORITHMS.has(algorithm)) {
      const secret = entry.secret
      if (entry.private !== undefined || entry.public !== undefined) {
        throw new InvalidOptionError(at, 'mixes a secret and a key pair: a keyring holds one kind of key, for one `algorithm`')
      }
      const where = single ? 'secret' : `${at}.secret`
      if (!isKey(secret) || Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
        throw new InvalidOptionError(where, `must be a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
      }
      if (looksLikeKey(secret)) {
        // An HMAC keyed with a public key lets anyone who has that key sign tokens.
        throw new InvalidOptionError(where, 'looks like a PEM or JWK key: give key pairs as `keys` with an asymmetric `algorithm`')
      }
      const key = deriveSigningKey(secret, algorithm as HmacAlgorithm)
      return index === 0 ? { kid, signKey: key, verifyKey: key } : { kid, verifyKey: key }
    }
    if (entry.secret !== undefined) {
      throw new InvalidOptionError(at, 'mixes a secret and a key pair: a keyring holds one kind of key, for one `algorithm`')
    }
    if (!isKey(entry.public) || (index === 0 && !isKey(entry.private)) || (entry.private !== undefined && !isKey(entry.private))) {
      throw new InvalidOptionError(at, index === 0 ? 'must hold non-empty PEM `private` and `public` keys: the first key signs' : 'must hold a non-empty PEM `public` key')
    }
    return index === 0 ? { kid, signKey: entry.private, verifyKey: entry.public } : { kid, verifyKey: entry.public }
  })
}

function parseMacKeys (macKeys: unknown): MacKey[] {
  if (!Array.isArray(macKeys) || macKeys.length === 0) throw new InvalidOptionError('macKeys', 'must be a non-empty array of `{ kid, secret }`')
  const seen = new Set<string>()
  return macKeys.map((entry: MacKeyEntry, index) => {
    const at = `macKeys[${index}]`
    if (typeof entry !== 'object' || entry === null) throw new InvalidOptionError(at, 'must be an object `{ kid, secret }`')
    if (typeof entry.kid !== 'string' || !KID.test(entry.kid)) throw new InvalidOptionError(`${at}.kid`, 'must be 1 to 64 characters of A-Z a-z 0-9 _ -')
    if (seen.has(entry.kid)) throw new InvalidOptionError(`${at}.kid`, `repeats the kid ${JSON.stringify(entry.kid)}`)
    seen.add(entry.kid)
    if (!isKey(entry.secret) || Buffer.byteLength(entry.secret) < MIN_SECRET_BYTES) {
      throw new InvalidOptionError(`${at}.secret`, `must be a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
    }
    return { kid: entry.kid, material: entry.secret }
  })
}

const HASH_BYTES: Record<HmacAlgorithm, number> = { HS256: 32, HS384: 48, HS512: 64 }

/**
 * The HMAC key tokens are signed with: derived from the configured secret
 * (HKDF-SHA-256, a label of the plugin's own), never the secret itself, so
 * that an app which verifies its own tokens with the same raw secret cannot
 * accept the plugin's.
 */
export function deriveSigningKey (secret: string | Buffer, algorithm: HmacAlgorithm): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', 'fastify-session-guard token signing key', HASH_BYTES[algorithm]))
}

/** A PEM block (key or certificate) or a JWK, as text. */
function looksLikeKey (secret: string | Buffer): boolean {
  const text = Buffer.isBuffer(secret) ? secret.toString('latin1') : secret
  return text.includes('-----BEGIN') || /^\s*\{[\s\S]*"kty"/.test(text)
}

function isKey (value: unknown): value is string | Buffer {
  return (typeof value === 'string' || Buffer.isBuffer(value)) && value.length > 0
}

/** A verified token: its header and payload. */
export interface VerifiedJwt {
  readonly header: Record<string, unknown>
  readonly payload: Record<string, unknown>
}

/**
 * The plugin's signers and verifiers. New tokens are signed with the current
 * key and name it in `kid`; a token is verified with the key its `kid` names,
 * and a token naming no key of the ring is refused. The algorithm is pinned,
 * and expiry is checked by the `TimedJwt`s against the injected clock.
 */
export class TokenKeys {
  readonly #signers = new Map<string, (payload: Record<string, unknown>) => string>()
  readonly #verifiers = new Map<string, (token: string) => VerifiedJwt>()
  readonly #decode = createDecoder({ complete: true })
  readonly #policy: TokenPolicy

  constructor (policy: TokenPolicy) {
    this.#policy = policy
    const { algorithm, issuer, audience, signingKeys } = policy
    try {
      for (const { kid, verifyKey } of signingKeys) {
        this.#verifiers.set(kid, createVerifier({
          key: verifyKey,
          complete: true,
          algorithms: [algorithm],
          ...(issuer === undefined ? {} : { allowedIss: issuer }),
          ...(audience === undefined ? {} : { allowedAud: audience }),
          // fast-jwt checks iss and aud only when present: a token without them must not pass.
          requiredClaims: [...(issuer === undefined ? [] : ['iss']), ...(audience === undefined ? [] : ['aud'])],
          // Expiry is checked against the injected clock by the TimedJwt subclasses.
          ignoreExpiration: true,
          ignoreNotBefore: true
        }) as (token: string) => VerifiedJwt)
      }
      this.#signerFor('JWT')
    } catch (err) {
      // fast-jwt checks that the keys fit the algorithm (a secret is fully checked
      // by the parser); its refusal names our option, like every other.
      throw new InvalidOptionError('keys', (err as Error).message)
    }
  }

  /** A token of `payload`, signed with the current key, with `typ` in its header: every token of the plugin names its kind. */
  sign (payload: Record<string, unknown>, typ: string): string {
    return this.#signerFor(typ)(payload)
  }

  /** The header and payload of a token signed with a key of the ring; throws for anything else. */
  verify (token: string): VerifiedJwt {
    const { header } = this.#decode(token) as VerifiedJwt
    const verifier = typeof header.kid === 'string' ? this.#verifiers.get(header.kid) : undefined
    if (verifier === undefined) throw new Error('the token names no key of the ring')
    return verifier(token)
  }

  /** The payload of a token, unverified (for tests and diagnostics). */
  decode (token: string): Record<string, unknown> {
    return (this.#decode(token) as VerifiedJwt).payload
  }

  #signerFor (typ: string): (payload: Record<string, unknown>) => string {
    let signer = this.#signers.get(typ)
    if (signer === undefined) {
      const { algorithm, issuer, audience, signingKeys } = this.#policy
      const current = signingKeys[0] as SigningKey
      signer = createSigner({
        key: current.signKey as string | Buffer,
        algorithm,
        kid: current.kid,
        header: { alg: algorithm, typ },
        ...(issuer === undefined ? {} : { iss: issuer }),
        ...(audience === undefined ? {} : { aud: audience })
      }) as (payload: Record<string, unknown>) => string
      this.#signers.set(typ, signer)
    }
    return signer
  }
}

/** What a `TimedJwt` signs and verifies with: `TokenKeys`. */
export type Signer = Pick<TokenKeys, 'sign' | 'verify'>

/**
 * A JWT of fixed lifetime and of one type (`typ` in its header), signed and
 * verified through the plugin's `TokenKeys`. `iat` and `exp` come from the
 * injected clock, and expiry is checked by the subclasses against it (the
 * verifier is told to skip it), so one clock rules all.
 */
export abstract class TimedJwt {
  readonly #keys: Signer
  readonly #ttlSeconds: number
  readonly #typ: string

  constructor (keys: Signer, ttlMs: number, typ: string) {
    this.#keys = keys
    this.#ttlSeconds = Math.ceil(ttlMs / 1000)
    this.#typ = typ
  }

  /** How long a token lives. */
  protected get lifetimeMs (): number {
    return this.#ttlSeconds * 1000
  }

  protected signClaims (claims: Record<string, unknown>, now: number): string {
    const iat = Math.floor(now / 1000)
    return this.#keys.sign({ ...claims, iat, exp: iat + this.#ttlSeconds }, this.#typ)
  }

  /** The verified payload, or `undefined` for a bad signature, key, type, algorithm, issuer or audience. */
  protected payload (token: string): Record<string, unknown> | undefined {
    // The last base64url character of a signature has unused low bits, and the
    // verifier decodes them away: without this check a token would have several
    // spellings, and anything keyed on the token string could be sidestepped.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    if (Buffer.from(signature, 'base64url').toString('base64url') !== signature) return undefined
    try {
      // fast-jwt refuses a token whose payload is not a JSON object.
      const { header, payload } = this.#keys.verify(token)
      // One type per kind of token: an access token never passes as a limit ticket, nor the reverse.
      return header.typ === this.#typ ? payload : undefined
    } catch {
      return undefined
    }
  }
}
