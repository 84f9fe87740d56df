import { createHash, randomBytes } from 'node:crypto'

/**
 * The HTTP benchmark's DPoP client (RFC 9449): one key pair and the proofs it
 * signs. The server process makes the key and logs in with it (bench/variants.ts);
 * the runner gets the key over IPC and signs a fresh proof for every request
 * of the load before the load starts (bench/http.ts), so signing never competes
 * with autocannon for the runner's core.
 */

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } })
type Jwk = import('jose', { with: { 'resolution-mode': 'import' } }).JWK
let jose: Promise<Jose> | undefined
/** `jose` is an ES module. */
async function loadJose (): Promise<Jose> {
  jose ??= import('jose')
  return await jose
}

export type DpopAlgorithm = 'ES256' | 'EdDSA'

/** A DPoP client's key and the access token bound to it: plain JSON, so it crosses the IPC channel. */
export interface DpopClient {
  readonly alg: DpopAlgorithm
  /** The private key as a JWK (`d` and the public members). */
  readonly privateJwk: Jwk
  /** The access token every proof names in `ath`; empty until the login answered. */
  readonly accessToken: string
}

export async function newDpopKey (alg: DpopAlgorithm): Promise<DpopClient> {
  const { generateKeyPair, exportJWK } = await loadJose()
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) })
  return { alg, privateJwk: await exportJWK(privateKey), accessToken: '' }
}

/** Proofs signed at once, so WebCrypto's thread pool has work queued. */
const BATCH = 256

/**
 * `count` proofs for `htm` at `htu`, each with its own `jti` (the server
 * refuses a replayed one), `iat` now, and `ath` when the client has a token.
 */
export async function signProofs (client: DpopClient, htm: string, htu: string, count: number): Promise<string[]> {
  const { SignJWT, importJWK } = await loadJose()
  const key = await importJWK(client.privateJwk, client.alg)
  const { d: _private, ...jwk } = client.privateJwk
  const header = { alg: client.alg, typ: 'dpop+jwt', jwk }
  const ath = client.accessToken === '' ? undefined : createHash('sha256').update(client.accessToken).digest('base64url')
  // A random prefix and a counter: unique across runs without a random draw per proof.
  const prefix = randomBytes(9).toString('base64url')
  const proofs: string[] = []
  while (proofs.length < count) {
    const iat = Math.floor(Date.now() / 1000)
    const batch: Array<Promise<string>> = []
    for (let i = proofs.length; i < Math.min(count, proofs.length + BATCH); i++) {
      batch.push(new SignJWT({ htm, htu, jti: `${prefix}.${i}`, iat, ...(ath === undefined ? {} : { ath }) }).setProtectedHeader(header).sign(key))
    }
    proofs.push(...await Promise.all(batch))
  }
  return proofs
}
