import { createHash, createHmac, hkdfSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { checkDpopRequest, DPOP_DESCRIPTIONS, DpopProofs, parseDpopOptions, readDpopToken, type DpopAlgorithm, type DpopPolicy } from '../lib/http/dpop.js'
import { memoryStore } from '../lib/index.js'

/**
 * DPoP proofs one at a time, without HTTP: each bound of the proof and of the
 * `Authorization: DPoP` header, the option checks, the challenges' headers and
 * the nonces' derivation. Over HTTP (test/dpop.test.ts) most refusals are the
 * same 401; here the reason is seen.
 */

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } })
const jose: Promise<Jose> = import('jose')

const NOW = 1_790_000_000_000
const URL_ = 'https://api.example/orders'
const MAC = { kid: 'k1', material: 'a'.repeat(32) }

function request (headers: Record<string, string | string[]> = {}): FastifyRequest {
  return { method: 'POST', url: '/orders', headers, protocol: 'https', host: 'api.example' } as unknown as FastifyRequest
}

/** A reply that records its headers. */
function reply (): FastifyReply & { headers: Record<string, string> } {
  const headers: Record<string, string> = {}
  return { headers, header (name: string, value: string) { headers[name] = value; return this } } as unknown as FastifyReply & { headers: Record<string, string> }
}

function proofs (policy: Partial<DpopPolicy> = {}): DpopProofs {
  return new DpopProofs({ store: memoryStore(), clock: () => NOW, macKey: MAC, clockToleranceMs: 0 }, { ...parseDpopOptions(true) as DpopPolicy, ...policy })
}

const key = (async () => {
  const { generateKeyPair, exportJWK, calculateJwkThumbprint } = await jose
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = await exportJWK(publicKey)
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) }
})()

let jtis = 0
/** A proof for `POST URL_` at `NOW` unless `claims` say otherwise (a claim set to `undefined` is left out). */
async function proof (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const { SignJWT } = await jose
  const { privateKey, jwk } = await key
  const payload = Object.fromEntries(Object.entries({ htm: 'POST', htu: URL_, jti: `jti-${++jtis}`, iat: NOW / 1000, ...claims }).filter(([, value]) => value !== undefined))
  return await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk, ...header }).sign(privateKey)
}

/**
 * A proof of exactly `length` characters: a padding claim, and a `kid` of 0 to 3
 * characters since a base64url part is never 1 more than a multiple of 4 long.
 */
async function proofOfLength (length: number): Promise<string> {
  for (const kid of ['', 'k', 'kk', 'kkk']) {
    const header = kid === '' ? {} : { kid }
    const claims = (pad: number): Record<string, unknown> => ({ jti: `length-${length}`, pad: 'p'.repeat(pad) })
    const start = Math.max(0, Math.floor((length - (await proof(claims(0), header)).length) * 3 / 4) - 4)
    for (let pad = start; pad < start + 12; pad++) {
      const made = await proof(claims(pad), header)
      if (made.length === length) return made
    }
  }
  throw new Error(`no proof of ${length} characters`)
}

async function reason (header: string | string[] | undefined, verifier = proofs(), bound: { accessToken?: string, jkt?: string } = {}): Promise<string> {
  const verified = await verifier.verify(request(header === undefined ? {} : { dpop: header }), NOW, bound)
  return typeof verified === 'string' ? verified : 'accepted'
}

t.test('a proof of at most 8 KiB, in the JWS compact shape, with a string jti of at most 256 characters and a numeric iat', async (t) => {
  t.equal(await reason(await proof()), 'accepted', 'a proof')
  t.equal(await reason(await proofOfLength(8192)), 'accepted', '8 KiB exactly')
  t.equal(await reason(await proofOfLength(8193)), 'dpop_invalid_proof', 'one character more, well signed')
  t.equal(await reason(await proof({ jti: 'j'.repeat(256) })), 'accepted', 'a jti of 256 characters')
  t.equal(await reason(await proof({ jti: 'j'.repeat(257) })), 'dpop_invalid_proof', 'a jti of 257')
  t.equal(await reason(await proof({ jti: 12345 })), 'dpop_invalid_proof', 'a numeric jti')
  t.equal(await reason(await proof({ jti: '' })), 'dpop_invalid_proof', 'an empty jti')
  t.equal(await reason(await proof({ iat: undefined })), 'dpop_invalid_proof', 'no iat')
  t.equal(await reason(await proof({ htu: [URL_] })), 'dpop_htu_mismatch', 'an htu that prints as the URL but is not a string')
  t.equal(await reason(undefined), 'dpop_missing_proof', 'no header')
  t.equal(await reason([await proof(), await proof()]), 'dpop_invalid_proof', 'two headers')
})

t.test('a nonce is derived from the MAC key under its own label: every instance, of any version, accepts the others\'', async (t) => {
  const step = String(Math.floor(NOW / 60_000))
  const nonceKey = Buffer.from(hkdfSync('sha256', MAC.material, '', 'fastify-session-guard dpop nonce', 32))
  t.equal(proofs().nonce(NOW), `${step}.${createHmac('sha256', nonceKey).update(step).digest('base64url')}`)
})

t.test('nonces under a clock that starts at 0 (a single-digit time step)', async (t) => {
  const verifier = proofs({ nonce: true })
  const now = 90_000
  t.match(verifier.nonce(now), /^1\./, 'the step is one digit')
  const made = await proof({ iat: now / 1000, nonce: verifier.nonce(now) })
  t.same(await verifier.verify(request({ dpop: made }), now), { jkt: (await key).jkt, renewNonce: false })
})

t.test('the challenges: a DPoP-Nonce only with use_dpop_nonce', async (t) => {
  const verifier = proofs()
  for (const reason of Object.keys(DPOP_DESCRIPTIONS) as Array<keyof typeof DPOP_DESCRIPTIONS>) {
    const answer = reply()
    verifier.challenge(answer, reason, NOW)
    t.equal(answer.headers['dpop-nonce'] !== undefined, reason === 'dpop_nonce_required', `${reason}: DPoP-Nonce`)
  }
})

t.test('the token endpoint sends a new nonce only when the proof\'s is from the previous step', async (t) => {
  const off = reply()
  t.ok('jkt' in await proofs().atTokenEndpoint(request({ dpop: await proof() }), off, NOW), 'nonces off: accepted')
  t.same(off.headers, {}, 'nonces off: no header')
  const verifier = proofs({ nonce: true })
  const current = reply()
  t.ok('jkt' in await verifier.atTokenEndpoint(request({ dpop: await proof({ nonce: verifier.nonce(NOW) }) }), current, NOW))
  t.same(current.headers, {}, 'a nonce of this step: no header')
  const previous = reply()
  t.ok('jkt' in await verifier.atTokenEndpoint(request({ dpop: await proof({ nonce: verifier.nonce(NOW - 60_000) }) }), previous, NOW))
  t.equal(previous.headers['dpop-nonce'], verifier.nonce(NOW), 'a nonce of the previous step: the current one')
})

t.test('each refusal\'s error_description is the fixed words docs/deployment.md promises', async (t) => {
  const docs = await readFile(new URL('../docs/deployment.md', `file://${__filename}`), 'utf8')
  const documented = Object.fromEntries([...docs.matchAll(/^\| `(dpop_[a-z_]+)` \| `([^`]+)` \|$/gm)].map(([, reason, words]) => [reason, words]))
  t.same(DPOP_DESCRIPTIONS, documented)
  for (const [reason, words] of Object.entries(documented)) {
    const answer = reply()
    proofs().challenge(answer, reason as keyof typeof DPOP_DESCRIPTIONS, NOW)
    t.match(answer.headers['www-authenticate'], `, error_description="${words}"`, reason)
  }
})

t.test('Authorization: DPoP <token>: the scheme, one or more spaces, one compact token, at most 8 KiB', async (t) => {
  const token = 'x.y.z'
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ['the scheme and a token', `DPoP ${token}`, token],
    ['any case, several spaces, trailing spaces', `dpop   ${token}  `, token],
    ['another scheme ending in DPoP', `NotDPoP ${token}`, undefined],
    ['text after the token', `DPoP ${token} extra`, undefined],
    ['8 KiB exactly', `DPoP ${'a'.repeat(8192 - 9)}.b.c`, `${'a'.repeat(8192 - 9)}.b.c`],
    ['one character more', `DPoP ${'a'.repeat(8192 - 8)}.b.c`, undefined],
    ['none', undefined, undefined]
  ]
  for (const [name, header, expected] of cases) {
    t.equal(readDpopToken(request(header === undefined ? {} : { authorization: header })), expected, name)
  }
})

t.test('the options: every algorithm named, each one checked, errors that name the option', async (t) => {
  const all: DpopAlgorithm[] = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512']
  for (const alg of all) t.same(parseDpopOptions({ algorithms: [alg] })?.algorithms, [alg], alg)
  t.throws(() => parseDpopOptions({ algorithms: ['ES256', 'HS256' as DpopAlgorithm] }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION',
    message: `Invalid option "dpop.algorithms": must be a non-empty array of ${all.join(', ')}`
  }, 'one symmetric algorithm among good ones')
  t.throws(() => parseDpopOptions('yes' as unknown as boolean), { message: 'Invalid option "dpop": must be a boolean' })
  t.throws(() => parseDpopOptions({ windows: '1m' } as object), { message: 'Invalid option "dpop.windows": is not an option of fastify-session-guard' })
})

t.test('a token whose cnf.jkt is not the key its session is bound to is refused, whatever the proof', async (t) => {
  const { jkt } = await key
  const verifier = proofs()
  const check = async (fph: string): Promise<string | undefined> =>
    await checkDpopRequest(verifier, request({ dpop: await proof({ ath: createHash('sha256').update('t.o.k').digest('base64url') }) }), reply(), { token: 't.o.k', claims: { fph, cnf: { jkt } }, scheme: 'dpop', now: NOW })
  t.equal(await check(`dpop:${jkt}`), undefined, 'bound to that key')
  t.equal(await check('dpop:another-key'), 'dpop_bound_token', 'bound to another key')
  t.equal(await check('a-fingerprint-hash'), 'dpop_bound_token', 'bound to a fingerprint')
})
