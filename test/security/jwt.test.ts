import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import t from 'tap'
import type { SessionGuardOptions } from '../../lib/index.js'
import { deriveSigningKey, parseTokenOptions, TokenKeys } from '../../lib/tokens/jwt.js'
import { type Credentials, type Harness, MINUTE, SECRET } from '../helper.js'
import { assertGuardRefused, assertRefreshRefused, assertUntouched, callMe, claimsOf, refreshByCookie, setup, snapshot } from './setup.js'

/**
 * JWT attacks: RFC 8725 (JWT best current practices) and the classes of the
 * advisories published against fast-jwt, jsonwebtoken and @fastify/jwt
 * (algorithm `none`, algorithm confusion with public keys in every encoding,
 * empty keys, key-selecting headers, `crit`, malformed segments, claim type
 * confusion, `iss` arrays, time claims, verification-cache key collisions).
 *
 * Every forged token carries the claims of a real, live session (its `sub`,
 * `sid` and `fph`) and is sent with that session's fingerprint cookie, so the
 * only thing between it and a 200 is the defence the case names.
 */

const FIXTURES = join(__dirname, 'fixtures')
const b64u = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

type Signer = (input: string) => string
const hmacWith = (key: string | Buffer, hash = 'sha256'): Signer => (input) => createHmac(hash, key).update(input).digest('base64url')

/** The key the plugin signs with: derived from SECRET under the plugin's label. */
const KEY = deriveSigningKey(SECRET, 'HS256')
/** The header of a genuine access token but its alg: the current kid, typed as an access token (RFC 9068). */
const AT = { typ: 'at+jwt', kid: 'default' }

/** A compact JWS from any header and payload (raw JSON text allowed), signed by `signer`. */
function forge (header: unknown, payload: unknown, signer: Signer | string = hmacWith(KEY)): string {
  const encode = (part: unknown): string => typeof part === 'string' && part.startsWith('raw:') ? b64u(part.slice(4)) : b64u(part)
  const input = `${encode(header)}.${encode(payload)}`
  return `${input}.${typeof signer === 'string' ? signer : signer(input)}`
}

interface Attack { name: string, token: string }

/** Logs alice in, runs the attacks against /me, proves no session changed, then the control. */
async function expectRefused (t: Test, h: Harness, alice: Credentials, attacks: (alice: Credentials) => Attack[]): Promise<void> {
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice], ['alice'])
  for (const { name, token } of attacks(alice)) {
    assertGuardRefused(t, await callMe(h.app, token, alice.fingerprint), name)
  }
  await assertUntouched(t, h.app, before, 'after the attacks', [alice], ['alice'])
  t.equal((await h.me(alice)).statusCode, 200, 'control: the genuine token works')
}

t.test('alg none, in every spelling, with and without a signature', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    const genuineSignature = alice.accessToken.split('.')[2] as string
    return ['none', 'None', 'NONE', 'nOnE', ' none', 'none ', ''].flatMap((alg) => [
      { name: `alg "${alg}", empty signature`, token: forge({ alg, ...AT }, claims, '') },
      { name: `alg "${alg}", junk signature`, token: forge({ alg, ...AT }, claims, 'AAAA') },
      { name: `alg "${alg}", the genuine token's signature`, token: forge({ alg, ...AT }, claims, genuineSignature) },
      { name: `alg "${alg}", HMAC-signed with the real secret`, token: forge({ alg, ...AT }, claims) }
    ]).concat([
      { name: 'no alg at all', token: forge(AT, claims) },
      { name: 'alg null', token: forge({ alg: null }, claims) },
      { name: 'alg as an array', token: forge({ alg: ['HS256'] }, claims) },
      { name: 'the genuine token with its signature stripped', token: `${alice.accessToken.split('.').slice(0, 2).join('.')}.` }
    ])
  })
})

t.test('the algorithm is pinned: other HMAC algorithms signed with the real secret are refused', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    return [
      { name: 'HS384 with the real secret', token: forge({ alg: 'HS384', ...AT }, claims, hmacWith(KEY, 'sha384')) },
      { name: 'HS512 with the real secret', token: forge({ alg: 'HS512', ...AT }, claims, hmacWith(KEY, 'sha512')) },
      { name: 'hs256 (lower case) with the real secret', token: forge({ alg: 'hs256', ...AT }, claims) }
    ]
  })
})

t.test('wrong, empty and falsy keys never verify', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    const header = { alg: 'HS256', ...AT }
    return ['', 'null', 'undefined', '0', 'false', SECRET, SECRET.slice(0, -1), `${SECRET} `, SECRET.toUpperCase()].map((key) => ({
      name: `signed with ${JSON.stringify(key.length > 20 ? `${key.slice(0, 6)}… (${key.length})` : key)}`,
      token: forge(header, claims, hmacWith(key))
    })).concat([
      { name: 'signed with an empty Buffer', token: forge(header, claims, hmacWith(Buffer.alloc(0))) },
      { name: 'signed with 32 zero bytes', token: forge(header, claims, hmacWith(Buffer.alloc(32))) }
    ])
  })
})

t.test('key-selecting headers (kid, jku, x5u, jwk, x5c) never change the key', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const attackerJwk = attacker.publicKey.export({ format: 'jwk' })
  const attackerSecret = randomBytes(32)
  const rs256 = (input: string): string => sign('sha256', Buffer.from(input), attacker.privateKey).toString('base64url')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    return [
      { name: 'kid pointing at /dev/null, signed with an empty key', token: forge({ alg: 'HS256', kid: '../../../../../../dev/null' }, claims, hmacWith('')) },
      { name: 'kid with SQL injection, signed with its output', token: forge({ alg: 'HS256', kid: "x' UNION SELECT 'attacker-key" }, claims, hmacWith('attacker-key')) },
      { name: 'kid naming the attacker secret', token: forge({ alg: 'HS256', kid: attackerSecret.toString('hex') }, claims, hmacWith(attackerSecret)) },
      { name: 'embedded jwk (oct) with the attacker secret', token: forge({ alg: 'HS256', jwk: { kty: 'oct', k: attackerSecret.toString('base64url') } }, claims, hmacWith(attackerSecret)) },
      { name: 'embedded jwk (RSA) of the attacker, RS256', token: forge({ alg: 'RS256', jwk: attackerJwk }, claims, rs256) },
      { name: 'jku pointing at the attacker', token: forge({ alg: 'RS256', jku: 'https://attacker.example/jwks.json', kid: 'a' }, claims, rs256) },
      { name: 'x5u pointing at the attacker', token: forge({ alg: 'RS256', x5u: 'https://attacker.example/cert.pem' }, claims, rs256) },
      { name: 'x5c with a certificate chain', token: forge({ alg: 'RS256', x5c: [readFileSync(join(FIXTURES, 'rsa-cert.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, '')] }, claims, rs256) }
    ]
  })
  // kid selects a key of the configured ring only: a kid the ring does not hold is refused, even under the real key.
  for (const kid of ['anything', 'Default', 'default ', '', 0, null, ['default']]) {
    assertGuardRefused(t, await callMe(h.app, forge({ alg: 'HS256', typ: 'at+jwt', kid }, claimsOf(alice.accessToken)), alice.fingerprint), `kid ${JSON.stringify(kid)} under the real key`)
  }
  assertGuardRefused(t, await callMe(h.app, forge({ alg: 'HS256', typ: 'at+jwt' }, claimsOf(alice.accessToken)), alice.fingerprint), 'no kid, under the real key')
  t.equal((await callMe(h.app, forge({ alg: 'HS256', ...AT }, claimsOf(alice.accessToken)), alice.fingerprint)).statusCode, 200, 'control: the configured kid under the real key')
})

t.test('crit: an extension the plugin does not understand is refused, even under the real key', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    return [
      { name: 'crit naming an unknown extension that is present', token: forge({ alg: 'HS256', ...AT, crit: ['exp-ext'], 'exp-ext': 1 }, claims) },
      { name: 'crit naming an absent extension', token: forge({ alg: 'HS256', ...AT, crit: ['missing'] }, claims) },
      { name: 'crit b64=false (RFC 7797, unencoded payload)', token: forge({ alg: 'HS256', ...AT, crit: ['b64'], b64: false }, claims) },
      { name: 'crit empty', token: forge({ alg: 'HS256', ...AT, crit: [] }, claims) },
      { name: 'crit not an array', token: forge({ alg: 'HS256', ...AT, crit: 'exp-ext', 'exp-ext': 1 }, claims) },
      { name: 'crit naming a registered header', token: forge({ alg: 'HS256', ...AT, crit: ['alg'] }, claims) },
      { name: 'crit with a non-string entry', token: forge({ alg: 'HS256', ...AT, crit: [1] }, claims) }
    ]
  })
})

t.test('malformed and non-JSON segments', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    const [header, payload, signature] = alice.accessToken.split('.') as [string, string, string]
    return [
      { name: 'one segment', token: header },
      { name: 'two segments', token: `${header}.${payload}` },
      { name: 'four segments', token: `${alice.accessToken}.${signature}` },
      { name: 'five segments (JWE shape)', token: `${header}.${payload}.${signature}.${payload}.${signature}` },
      { name: 'empty header', token: `.${payload}.${signature}` },
      { name: 'empty payload', token: `${header}..${signature}` },
      { name: 'empty signature', token: `${header}.${payload}.` },
      { name: 'standard base64 with padding', token: alice.accessToken.replace(/-/g, '+').replace(/_/g, '/') + '==' },
      { name: 'a signature segment with an extra character', token: `${alice.accessToken}A` },
      { name: 'a truncated signature', token: alice.accessToken.slice(0, -2) },
      { name: 'header not JSON', token: forge('raw:not json', claims) },
      { name: 'payload not JSON', token: forge({ alg: 'HS256', ...AT }, 'raw:not json') },
      { name: 'payload with a trailing comma', token: forge({ alg: 'HS256', ...AT }, `raw:${JSON.stringify(claims).slice(0, -1)},}`) },
      { name: 'payload with duplicate sub (last wins in JSON.parse)', token: forge({ alg: 'HS256', ...AT }, `raw:${JSON.stringify(claims).slice(0, -1)},"sub":"bob"}`) },
      { name: 'header an array', token: forge(['HS256'], claims) },
      { name: 'header null', token: forge(null, claims) },
      { name: 'header a string', token: forge('HS256', claims) },
      { name: 'header with a __proto__ alg', token: forge('raw:{"__proto__":{"alg":"HS256"}}', claims) },
      { name: 'the genuine header and payload swapped', token: `${payload}.${header}.${signature}` },
      { name: 'the payload of another token under this signature', token: `${header}.${b64u({ ...claims, role: 'admin' })}.${signature}` }
    ]
  })
})

t.test('non-object payloads, signed with the real key', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    return ([['an array of the claims', [claims]], ['an empty array', []], ['a string', 'alice'], ['a number', 42], ['null', null], ['true', true], ['an empty object', {}]] as Array<[string, unknown]>)
      .map(([name, payload]) => ({ name: `payload ${name}`, token: forge({ alg: 'HS256', ...AT }, payload) }))
  })
})

t.test('claim type confusion, signed with the real key', async (t) => {
  const h = await setup(t, { issuer: 'https://auth.example', audience: 'api' })
  const alice = await h.login('alice')
  const bob = await h.login('123')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    const c = (name: string, change: Record<string, unknown>): Attack => ({ name, token: forge({ alg: 'HS256', ...AT }, { ...claims, ...change }) })
    const { sub, sid, fph, exp } = claims as { sub: string, sid: string, fph: string, exp: number }
    return [
      c('sub a number (user "123" exists)', { sub: 123, sid: bob.sessionId }),
      c('sub an array', { sub: [sub] }),
      c('sub an object', { sub: { toString: sub } }),
      c('sub null', { sub: null }),
      c('sub missing', { sub: undefined }),
      c('sid an array', { sid: [sid] }),
      c('sid an object', { sid: { id: sid } }),
      c('sid a number', { sid: 1 }),
      c('sid missing', { sid: undefined }),
      c('fph an array', { fph: [fph] }),
      c('fph a number', { fph: 0 }),
      c('fph missing', { fph: undefined }),
      c('exp a string', { exp: String(exp) }),
      c('exp a float', { exp: exp + 0.5 }),
      c('exp huge (not a safe integer)', { exp: 1e300 }),
      { name: 'exp 1e309 (JSON.parse makes it Infinity)', token: forge({ alg: 'HS256', ...AT }, `raw:${JSON.stringify({ ...claims, exp: 0 }).replace('"exp":0', '"exp":1e309')}`) },
      c('exp negative', { exp: -1 }),
      c('exp zero', { exp: 0 }),
      c('exp null', { exp: null }),
      c('exp an array', { exp: [exp] }),
      c('exp missing', { exp: undefined }),
      c('iat a string', { iat: String(claims.iat) }),
      c('iat missing', { iat: undefined }),
      c('nbf a string in the future', { nbf: '9999999999' }),
      c('nbf a string in the past', { nbf: '0' }),
      c('nbf an array', { nbf: [0] }),
      c('nbf null', { nbf: null }),
      c('nbf an object', { nbf: {} }),
      c('iss an array holding the issuer', { iss: ['https://auth.example'] }),
      c('iss an array with the issuer second', { iss: ['https://evil.example', 'https://auth.example'] }),
      c('iss another issuer', { iss: 'https://evil.example' }),
      c('iss a prefix of the issuer', { iss: 'https://auth.exampl' }),
      c('iss missing', { iss: undefined }),
      c('aud missing', { aud: undefined }),
      c('aud another audience', { aud: 'other' }),
      c('aud an array without ours', { aud: ['other', 'api2'] }),
      c('aud a number', { aud: 1 })
    ]
  })
})

t.test('exp, nbf and iat edges, with and without clockTolerance', async (t) => {
  for (const toleranceMs of [0, 30_000]) {
    t.test(`clockTolerance ${toleranceMs} ms`, async (t) => {
      const h = await setup(t, { accessTokenTtl: '5m', idleTimeout: '1h', clockTolerance: toleranceMs })
      const alice = await h.login('alice')
      const claims = claimsOf(alice.accessToken) as { iat: number, exp: number }
      const now = (): number => Math.floor(h.clock.now / 1000)
      const at = (change: Record<string, unknown>): string => forge({ alg: 'HS256', ...AT }, { ...claims, ...change })
      const status = async (token: string): Promise<number> => (await callMe(h.app, token, alice.fingerprint)).statusCode
      const tolerance = toleranceMs / 1000

      t.equal(await status(at({ nbf: now() + tolerance })), 200, 'nbf exactly at now + tolerance')
      t.equal(await status(at({ nbf: now() + tolerance + 1 })), 401, 'nbf one second past the tolerance')
      t.equal(await status(at({ exp: now() - tolerance + 1 })), 200, 'exp one second inside the tolerance')
      t.equal(await status(at({ exp: now() - tolerance })), 401, 'exp exactly at now - tolerance')
      t.equal(await status(at({ exp: now() - 3600 })), 401, 'exp an hour ago')
      t.equal(await status(at({ iat: now() + 3600 })), 200, 'iat is informational (as RFC 7519 allows); exp and nbf bound the token')

      // The genuine token across its expiry.
      h.clock.advance(5 * MINUTE + toleranceMs - 1)
      t.equal(await status(alice.accessToken), 200, 'the last millisecond before exp + tolerance')
      const before = await snapshot(h.app, [alice], ['alice'])
      h.clock.advance(1)
      assertGuardRefused(t, await callMe(h.app, alice.accessToken, alice.fingerprint), 'at exp + tolerance')
      await assertUntouched(t, h.app, before, 'an expired token extends nothing', [alice], ['alice'])
    })
  }
})

t.test('exp and nbf are judged by the injected clock alone, never by the machine\'s', async (t) => {
  // A clock far ahead of the machine's: a verifier that read the machine's clock
  // would find this nbf still in the future.
  const h = await setup(t)
  h.clock.now = Date.UTC(2100, 0, 1)
  const alice = await h.login('alice')
  const now = Math.floor(h.clock.now / 1000)
  t.equal((await callMe(h.app, forge({ alg: 'HS256', ...AT }, { ...claimsOf(alice.accessToken), nbf: now }), alice.fingerprint)).statusCode, 200, 'nbf now, by the injected clock')
  // And one far behind it: every token it signs has long expired by the machine's clock.
  const past = await setup(t)
  past.clock.now = Date.UTC(2001, 0, 1)
  const bob = await past.login('bob')
  t.equal((await past.me(bob)).statusCode, 200, 'exp ahead, by the injected clock')
})

t.test('the verified-token cache outlives neither a token nor its session', async (t) => {
  // RFC 8725 says nothing of caches; the fast-jwt advisories do (a cache key
  // that collides, a cached result outliving exp). fast-jwt's cache is off; the
  // plugin's own remembers verified claims by the exact token string: these
  // prove a remembered token is still checked against the clock and the store.
  const h = await setup(t, { accessTokenTtl: '5m', idleTimeout: '1h', touchInterval: 0 })
  const alice = await h.login('alice')
  for (let i = 0; i < 5; i++) t.equal((await h.me(alice)).statusCode, 200, `verified ${i + 1} times`)
  const [header, payload, signature] = alice.accessToken.split('.') as [string, string, string]
  const flipped = `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`
  assertGuardRefused(t, await callMe(h.app, `${header}.${payload}.${flipped}`, alice.fingerprint), 'same header and payload, another signature (cache-key collision)')
  assertGuardRefused(t, await callMe(h.app, `${header}.${b64u({ ...claimsOf(alice.accessToken), role: 'admin' })}.${signature}`, alice.fingerprint), 'same signature, another payload')
  h.clock.advance(5 * MINUTE)
  assertGuardRefused(t, await callMe(h.app, alice.accessToken, alice.fingerprint), 'a token verified a moment ago is refused at its exp')

  const bob = await h.login('bob')
  t.equal((await h.me(bob)).statusCode, 200)
  await h.app.sessions.revoke(bob.sessionId)
  assertGuardRefused(t, await callMe(h.app, bob.accessToken, bob.fingerprint), 'a token verified a moment ago is refused once its session is revoked')

  const carol = await h.login('carol')
  assertGuardRefused(t, await callMe(h.app, carol.accessToken, undefined), 'refused once without its cookie')
  t.equal((await h.me(carol)).statusCode, 200, 'no error is cached either: the same token with its cookie works next')
})

t.test('access tokens are refused where refresh tokens go, and never rotate anything', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice], ['alice'])
  assertRefreshRefused(t, await refreshByCookie(h, alice.accessToken, alice.fingerprint), 'the access token as refresh cookie')
  assertRefreshRefused(t, await refreshByCookie(h, forge({ alg: 'none' }, claimsOf(alice.accessToken), ''), alice.fingerprint), 'an alg-none token as refresh cookie')
  await assertUntouched(t, h.app, before, 'refresh route', [alice], ['alice'])
})

// Algorithm confusion (CVE-2022-23540/23541 in jsonwebtoken, GHSA-c2ff-88x2-x9pg
// and its follow-ups in fast-jwt): an HMAC token "signed" with the server's
// public key, in every form an attacker may find it.
const rsaPrivate = readFileSync(join(FIXTURES, 'rsa-key.pem'), 'utf8')
const rsaPublic = readFileSync(join(FIXTURES, 'rsa-public.pem'), 'utf8')
const rsaCert = readFileSync(join(FIXTURES, 'rsa-cert.pem'), 'utf8')
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')

function encodingsOf (publicKey: KeyObject, pem: string): Array<[string, string | Buffer]> {
  const der = publicKey.export({ type: 'spki', format: 'der' })
  const forms: Array<[string, string | Buffer]> = [
    ['PEM (BEGIN PUBLIC KEY)', pem],
    ['PEM without its trailing newline', pem.trimEnd()],
    ['PEM with a leading newline', `\n${pem}`],
    ['PEM with leading spaces', `   ${pem}`],
    ['PEM with CRLF line ends', pem.replace(/\n/g, '\r\n')],
    ['PEM with a trailing blank line', `${pem}\n`],
    ['PEM body only (base64 DER with line breaks)', pem.replace(/-----[^-]+-----/g, '').trim()],
    ['DER bytes', der],
    ['base64 DER', der.toString('base64')],
    ['base64url DER', der.toString('base64url')],
    ['JWK JSON', JSON.stringify(publicKey.export({ format: 'jwk' }))]
  ]
  if (publicKey.asymmetricKeyType === 'rsa') {
    forms.push(['PEM (BEGIN RSA PUBLIC KEY, pkcs1)', publicKey.export({ type: 'pkcs1', format: 'pem' }) as string])
    forms.push(['PEM (pkcs1) with a leading newline', `\n${publicKey.export({ type: 'pkcs1', format: 'pem' }) as string}`])
    forms.push(['X.509 certificate PEM', rsaCert])
    forms.push(['X.509 certificate PEM with leading whitespace', `\n  ${rsaCert}`])
  }
  return forms
}

const asymmetric: Array<[SessionGuardOptions['algorithm'], string, string, string]> = [
  ['RS256', 'RSA key as SPKI PEM', rsaPrivate, rsaPublic],
  ['RS256', 'RSA key as an X.509 certificate', rsaPrivate, rsaCert],
  ['ES256', 'P-256 key', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, ec.publicKey.export({ type: 'spki', format: 'pem' }) as string],
  ['EdDSA', 'Ed25519 key', ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, ed.publicKey.export({ type: 'spki', format: 'pem' }) as string]
]

for (const [algorithm, label, privatePem, publicPem] of asymmetric) {
  t.test(`algorithm confusion against ${algorithm} (${label})`, async (t) => {
    const h = await setup(t, { secret: undefined, keys: { private: privatePem, public: publicPem }, algorithm })
    const alice = await h.login('alice')
    const publicKey = createPublicKey(createPrivateKey(privatePem))
    await expectRefused(t, h, alice, (alice) => {
      const claims = claimsOf(alice.accessToken)
      const attacks: Attack[] = []
      for (const [form, key] of encodingsOf(publicKey, publicPem)) {
        for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']] as const) {
          attacks.push({ name: `${alg} keyed with the public key as ${form}`, token: forge({ alg, ...AT }, claims, hmacWith(key, hash)) })
        }
        attacks.push({ name: `alg ${algorithm} over an HMAC keyed with the public key as ${form}`, token: forge({ alg: algorithm, ...AT }, claims, hmacWith(key)) })
      }
      attacks.push({ name: 'alg none', token: forge({ alg: 'none', ...AT }, claims, '') })
      if (algorithm === 'RS256') {
        const pss = (input: string): string => sign('sha256', Buffer.from(input), { key: privatePem, padding: 6, saltLength: 32 }).toString('base64url')
        attacks.push({ name: 'PS256 signed with the real private key (pinning within a key family)', token: forge({ alg: 'PS256', ...AT }, claims, pss) })
        attacks.push({ name: 'RS512 signed with the real private key', token: forge({ alg: 'RS512', ...AT }, claims, (input) => sign('sha512', Buffer.from(input), privatePem).toString('base64url')) })
      }
      return attacks
    })
  })
}

t.test('a token has one spelling: a signature with other unused trailing bits is refused', async (t) => {
  // 32 signature bytes take 43 base64url characters, 258 bits: the last
  // character's two low bits carry nothing, so flipping them decodes to the same
  // signature. Accepting that would give every token several spellings, which
  // defeats anything keyed on the token string (a log search, a denylist, a cache).
  const h = await setup(t)
  const alice = await h.login('alice')
  const [header, payload, signature] = alice.accessToken.split('.') as [string, string, string]
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = ALPHABET.indexOf(signature.at(-1) as string)
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice], ['alice'])
  for (const spare of [1, 2, 3]) {
    const respelled = `${signature.slice(0, -1)}${ALPHABET[last ^ spare]}`
    t.same(Buffer.from(respelled, 'base64url'), Buffer.from(signature, 'base64url'), `flipping spare bits ${spare} decodes to the same bytes`)
    assertGuardRefused(t, await callMe(h.app, `${header}.${payload}.${respelled}`, alice.fingerprint), `spare bits ${spare} flipped`)
  }
  await assertUntouched(t, h.app, before, 'after the respelled tokens', [alice], ['alice'])
  t.equal((await h.me(alice)).statusCode, 200, 'control: the canonical spelling works')
})

t.test('the guard takes only tokens typed as access tokens (typ at+jwt, RFC 9068), under the real key', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  t.match(JSON.parse(Buffer.from(alice.accessToken.split('.')[0] as string, 'base64url').toString()), { typ: 'at+jwt' }, 'the plugin types its access tokens')
  await expectRefused(t, h, alice, (alice) => {
    const claims = claimsOf(alice.accessToken)
    return ([undefined, 'JWT', 'jwt', 'AT+JWT', 'application/at+jwt', 'at+jwt ', 'sg-limit', 'sg-limit+jwt', 1, null, ['at+jwt']] as unknown[]).map((typ) => ({
      name: `typ ${JSON.stringify(typ)}`,
      token: forge({ alg: 'HS256', kid: 'default', ...(typ === undefined ? {} : { typ }) }, claims)
    }))
  })
})

t.test('the signing key: HKDF-SHA-256 of the secret under the plugin\'s label, as long as the hash (known answers: every version signs alike)', async (t) => {
  const secret = 'a-secret-of-at-least-32-bytes!!!'
  const hs256 = '05802642c9d43c0b081d35cfe6b5fbcfbc1b93ae4922601b5f2d84d867d7cec7'
  const hs384 = `${hs256}d8e9c6957c4b4db3ddfa7d5e112bf30a`
  const hs512 = `${hs384}48a030a496c44284be2904eee5239c26`
  t.equal(deriveSigningKey(secret, 'HS256').toString('hex'), hs256)
  t.equal(deriveSigningKey(secret, 'HS384').toString('hex'), hs384)
  t.equal(deriveSigningKey(secret, 'HS512').toString('hex'), hs512)
  t.equal(deriveSigningKey(Buffer.from(secret), 'HS256').toString('hex'), hs256, 'a Buffer secret, the same key')
})

t.test('TokenKeys: a token naming no key of the ring is refused, and says so', async (t) => {
  const macKeys = [{ kid: 'm1', secret: SECRET }]
  const ring = new TokenKeys(parseTokenOptions({ keys: [{ kid: 'current', secret: SECRET }], macKeys }))
  const other = new TokenKeys(parseTokenOptions({ keys: [{ kid: 'other', secret: SECRET }], macKeys }))
  const token = other.sign({ sub: 'alice' }, 'at+jwt')
  t.throws(() => ring.verify(token), { message: 'the token names no key of the ring' }, 'same secret, unknown kid')
  t.match(ring.verify(ring.sign({ sub: 'alice' }, 'at+jwt')), { header: { kid: 'current', typ: 'at+jwt' }, payload: { sub: 'alice' } }, 'control')
})
