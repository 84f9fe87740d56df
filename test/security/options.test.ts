import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { registrationError, SECRET } from '../helper.js'

/**
 * The plugin refuses to start with unsafe settings, with an error that names
 * the option. `test/registration.test.ts` covers the basic cases; these are
 * the ones an attacker profits from or a hurried deployment gets wrong.
 */

const refusal = registrationError

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
const cert = readFileSync(join(__dirname, 'fixtures', 'rsa-cert.pem'), 'utf8')
const jwk = JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }))

t.test('a key where an HMAC secret goes is refused (algorithm confusion by configuration)', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['a public key PEM', rsa.publicKey],
    ['a public key PEM as a Buffer', Buffer.from(rsa.publicKey)],
    ['a private key PEM', rsa.privateKey],
    ['a certificate PEM', cert],
    ['a public key PEM after whitespace', `\n  ${rsa.publicKey}`],
    ['a JWK', jwk],
    ['a JWK with leading whitespace', `  ${jwk}`],
    ['a pretty-printed JWK whose kty is not the first member', JSON.stringify({ use: 'sig', ...JSON.parse(jwk) }, null, 2)]
  ]
  for (const [name, secret] of cases) {
    const err = await refusal({ secret })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', name)
    t.match(err?.message, '"secret"', `${name}: names the option`)
  }
  t.equal(await refusal({ secret: 'a random secret that mentions {"kty" only after other text' }), undefined, 'a JWK is JSON from its first character')
})

t.test('empty, short and falsy HMAC secrets are refused, strings and Buffers alike', async (t) => {
  const cases: unknown[] = [null, 0, false, '', ' ', Buffer.alloc(0), Buffer.alloc(16), 'x'.repeat(31), Buffer.from('x'.repeat(31)), {}, [], ['x'.repeat(40)], 1e34]
  for (const secret of cases) {
    const err = await refusal({ secret })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `secret ${JSON.stringify(secret)}`)
    t.match(err?.message, '"secret"')
  }
  t.equal(await refusal({ secret: Buffer.alloc(32, 1) }), undefined, 'a 32-byte Buffer is long enough')
})

t.test('empty, falsy or mismatched asymmetric keys are refused', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
  const cases: Array<[string, unknown]> = [
    ['keys null', { keys: null, algorithm: 'RS256' }],
    ['keys empty', { keys: {}, algorithm: 'RS256' }],
    ['public key empty', { keys: { private: rsa.privateKey, public: '' }, algorithm: 'RS256' }],
    ['public key an empty Buffer', { keys: { private: rsa.privateKey, public: Buffer.alloc(0) }, algorithm: 'RS256' }],
    ['public key null', { keys: { private: rsa.privateKey, public: null }, algorithm: 'RS256' }],
    ['private key false', { keys: { private: false, public: rsa.publicKey }, algorithm: 'RS256' }],
    ['an RSA pair with ES256', { keys: { private: rsa.privateKey, public: rsa.publicKey }, algorithm: 'ES256' }],
    ['an EC public key with an RSA private key', { keys: { private: rsa.privateKey, public: ec.publicKey }, algorithm: 'RS256' }],
    ['a private key as the public key', { keys: { private: rsa.privateKey, public: rsa.privateKey }, algorithm: 'RS256' }],
    ['a string that is no key as the public key', { keys: { private: rsa.privateKey, public: 'x'.repeat(64) }, algorithm: 'RS256' }]
  ]
  for (const [name, options] of cases) {
    const err = await refusal(options)
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', name)
    t.match(err?.message, /"(keys|algorithm)"/, `${name}: names the option`)
  }
})

t.test('the algorithm is pinned to exactly one, of the key\'s family', async (t) => {
  const cases: unknown[] = ['none', 'None', 'NONE', 'hs256', 'HS256 ', ['HS256'], ['HS256', 'RS256'], 'HS256,RS256', 'RS256', '', 0]
  for (const algorithm of cases) {
    const err = await refusal({ secret: SECRET, algorithm })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `with secret: ${JSON.stringify(algorithm)}`)
    t.match(err?.message, '"algorithm"')
  }
  for (const algorithm of ['HS256', 'none', ['RS256'], ['RS256', 'PS256'], 'rs256', undefined]) {
    const err = await refusal({ keys: { private: rsa.privateKey, public: rsa.publicKey }, algorithm })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `with keys: ${JSON.stringify(algorithm)}`)
    t.match(err?.message, '"algorithm"')
  }
})

t.test('infinite, NaN and negative tolerances and durations are refused', async (t) => {
  const options = ['accessTokenTtl', 'clockTolerance', 'idleTimeout', 'absoluteTimeout', 'touchInterval', 'remember.idleTimeout', 'remember.absoluteTimeout', 'refresh.graceWindow']
  const values: unknown[] = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, '1e999ms', 'Infinity', 'NaN', '-5m', '', 'forever', true, {}]
  for (const option of options) {
    for (const value of values) {
      const [outer, inner] = option.split('.') as [string, string | undefined]
      const err = await refusal({ secret: SECRET, ...(inner === undefined ? { [outer]: value } : { [outer]: { [inner]: value } }) })
      t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `${option}: ${String(value)}`)
      t.match(err?.message, `"${option}"`)
    }
  }
})

t.test('Secure cookies may only be turned off with an explicit development: true', async (t) => {
  for (const development of [undefined, false, 'true', 1, 'yes', {}]) {
    const err = await refusal({ secret: SECRET, secureCookies: false, development })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `development ${JSON.stringify(development)}`)
    t.match(err?.message, '"secureCookies"')
  }
  for (const secureCookies of [0, '', null, 'false']) {
    const err = await refusal({ secret: SECRET, secureCookies, development: true })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', `secureCookies ${JSON.stringify(secureCookies)} is not a boolean`)
  }
  t.equal(await refusal({ secret: SECRET, secureCookies: false, development: true }), undefined)
})

t.test('each refusal of the token options says what is wanted', async (t) => {
  const pair = { private: rsa.privateKey, public: rsa.publicKey }
  const hmacOnly = 'must be HS256, HS384 or HS512 with `secret`'
  const keysWanted = 'must hold non-empty PEM `private` and `public` keys'
  const cases: Array<[string, unknown, string, string]> = [
    ['issuer a number', { secret: SECRET, issuer: 42 }, 'issuer', 'must be a non-empty string'],
    ['issuer empty', { secret: SECRET, issuer: '' }, 'issuer', 'must be a non-empty string'],
    ['audience null', { secret: SECRET, audience: null }, 'audience', 'must be a non-empty string'],
    ['audience empty', { secret: SECRET, audience: '' }, 'audience', 'must be a non-empty string'],
    ['secret and keys', { secret: SECRET, keys: pair, algorithm: 'RS256' }, 'secret', 'give either `secret` or `keys`, not both'],
    ['keys without algorithm', { keys: pair }, 'algorithm', 'must name the asymmetric algorithm of `keys` (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)'],
    ['keys a function that holds a pair', { keys: Object.assign(() => {}, pair), algorithm: 'RS256' }, 'keys', keysWanted],
    ['a private key in an array', { keys: { ...pair, private: [rsa.privateKey] }, algorithm: 'RS256' }, 'keys', keysWanted],
    ['an empty public key', { keys: { ...pair, public: '' }, algorithm: 'RS256' }, 'keys', keysWanted],
    ['an empty private key Buffer', { keys: { ...pair, private: Buffer.alloc(0) }, algorithm: 'RS256' }, 'keys', keysWanted],
    // What fast-jwt says of a key that does not fit, under our option's name.
    ['a public key that is no key', { keys: { ...pair, public: 'x'.repeat(64) }, algorithm: 'RS256' }, 'keys', 'Invalid public key provided for algorithms RS256.'],
    ['no secret', {}, 'secret', 'is required (or `keys` with an asymmetric `algorithm`)'],
    ['a short secret', { secret: 'short' }, 'secret', 'must be a string or Buffer of at least 32 bytes'],
    ['a PEM as the secret', { secret: rsa.publicKey }, 'secret', 'looks like a PEM or JWK key: give key pairs as `keys` with an asymmetric `algorithm`'],
    ['RS256 with a secret', { secret: SECRET, algorithm: 'RS256' }, 'algorithm', hmacOnly]
  ]
  for (const [name, options, option, wanted] of cases) {
    const err = await refusal(options)
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', name)
    t.equal(err?.message, `Invalid option "${option}": ${wanted}`, `${name}: the message`)
  }
})

t.test('each refusal of a keyring or of the MAC keys says what is wanted', async (t) => {
  const pair = { private: rsa.privateKey, public: rsa.publicKey }
  const macKeys = [{ kid: 'm1', secret: SECRET }]
  const kidWanted = 'must be 1 to 64 characters of A-Z a-z 0-9 _ -'
  const mixed = 'mixes a secret and a key pair: a keyring holds one kind of key, for one `algorithm`'
  const cases: Array<[string, unknown, string, string]> = [
    ['an empty ring', { keys: [], macKeys }, 'keys', 'must hold at least one key'],
    ['a ring without macKeys', { keys: [{ kid: 'a', secret: SECRET }] }, 'macKeys', 'is required with a keyring in `keys`, so that rotating a signing key logs nobody out'],
    ['an entry that is no object', { keys: [{ kid: 'a', secret: SECRET }, 'b'], macKeys }, 'keys[1]', 'must be an object with a `kid`'],
    ['an entry that is null', { keys: [{ kid: 'a', secret: SECRET }, null], macKeys }, 'keys[1]', 'must be an object with a `kid`'],
    ['a first entry that is null', { keys: [null], macKeys, algorithm: 'RS256' }, 'keys[0]', 'must be an object with a `kid`'],
    ['an entry without kid', { keys: [{ secret: SECRET }], macKeys }, 'keys[0].kid', kidWanted],
    ['an empty kid', { keys: [{ kid: '', secret: SECRET }], macKeys }, 'keys[0].kid', kidWanted],
    ['a kid with a dot', { keys: [{ kid: 'a.b', secret: SECRET }], macKeys }, 'keys[0].kid', kidWanted],
    ['a kid of 65 characters', { keys: [{ kid: 'k'.repeat(65), secret: SECRET }], macKeys }, 'keys[0].kid', kidWanted],
    ['a duplicate kid', { keys: [{ kid: 'a', secret: SECRET }, { kid: 'a', secret: `${SECRET}-2` }], macKeys }, 'keys[1].kid', 'repeats the kid "a"'],
    ['a short secret in the ring', { keys: [{ kid: 'a', secret: SECRET }, { kid: 'b', secret: 'short' }], macKeys }, 'keys[1].secret', 'must be a string or Buffer of at least 32 bytes'],
    ['a PEM as a secret of the ring', { keys: [{ kid: 'a', secret: rsa.publicKey }], macKeys }, 'keys[0].secret', 'looks like a PEM or JWK key: give key pairs as `keys` with an asymmetric `algorithm`'],
    ['a key pair after a secret', { keys: [{ kid: 'a', secret: SECRET }, { kid: 'b', ...pair }], macKeys }, 'keys[1]', mixed],
    ['a secret beside a private key', { keys: [{ kid: 'a', secret: SECRET, private: rsa.privateKey }], macKeys }, 'keys[0]', mixed],
    ['a secret beside a public key', { keys: [{ kid: 'a', secret: SECRET, public: rsa.publicKey }], macKeys }, 'keys[0]', mixed],
    ['a secret after a key pair', { keys: [{ kid: 'a', ...pair }, { kid: 'b', secret: SECRET }], macKeys, algorithm: 'RS256' }, 'keys[1]', mixed],
    ['an asymmetric algorithm for a ring of secrets', { keys: [{ kid: 'a', secret: SECRET }], macKeys, algorithm: 'RS256' }, 'algorithm', 'must be HS256, HS384 or HS512 with `keys`'],
    ['a ring of pairs without algorithm', { keys: [{ kid: 'a', ...pair }], macKeys }, 'algorithm', 'must name the asymmetric algorithm of `keys` (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)'],
    ['a first key without its private key', { keys: [{ kid: 'a', public: rsa.publicKey }], macKeys, algorithm: 'RS256' }, 'keys[0]', 'must hold non-empty PEM `private` and `public` keys: the first key signs'],
    ['an older key without its public key', { keys: [{ kid: 'a', ...pair }, { kid: 'b', private: rsa.privateKey }], macKeys, algorithm: 'RS256' }, 'keys[1]', 'must hold a non-empty PEM `public` key'],
    ['an older key with an empty private key', { keys: [{ kid: 'a', ...pair }, { kid: 'b', public: rsa.publicKey, private: '' }], macKeys, algorithm: 'RS256' }, 'keys[1]', 'must hold a non-empty PEM `public` key'],
    ['an older key that is no key', { keys: [{ kid: 'a', ...pair }, { kid: 'b', public: 'x'.repeat(64) }], macKeys, algorithm: 'RS256' }, 'keys', 'Invalid public key provided for algorithms RS256.'],
    ['macKeys empty', { secret: SECRET, macKeys: [] }, 'macKeys', 'must be a non-empty array of `{ kid, secret }`'],
    ['macKeys no array', { secret: SECRET, macKeys: { kid: 'm1', secret: SECRET } }, 'macKeys', 'must be a non-empty array of `{ kid, secret }`'],
    ['a MAC key that is no object', { secret: SECRET, macKeys: [null] }, 'macKeys[0]', 'must be an object `{ kid, secret }`'],
    ['a MAC key that is a string', { secret: SECRET, macKeys: ['m1'] }, 'macKeys[0]', 'must be an object `{ kid, secret }`'],
    ['a MAC key without kid', { secret: SECRET, macKeys: [{ secret: SECRET }] }, 'macKeys[0].kid', kidWanted],
    ['a duplicate MAC key version', { secret: SECRET, macKeys: [{ kid: 'm1', secret: SECRET }, { kid: 'm1', secret: `${SECRET}-2` }] }, 'macKeys[1].kid', 'repeats the kid "m1"'],
    ['a short MAC key', { secret: SECRET, macKeys: [{ kid: 'm1', secret: 'short' }] }, 'macKeys[0].secret', 'must be a string or Buffer of at least 32 bytes']
  ]
  for (const [name, options, option, wanted] of cases) {
    const err = await refusal(options)
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', name)
    t.equal(err?.message, `Invalid option "${option}": ${wanted}`, `${name}: the message`)
  }
  t.equal(await refusal({ keys: [{ kid: 'a', secret: SECRET }, { kid: 'b', secret: Buffer.alloc(32, 2) }], macKeys, algorithm: 'HS512' }), undefined, 'a ring of secrets, HS512')
  t.equal(await refusal({ keys: [{ kid: 'a', ...pair }, { kid: 'b', public: rsa.publicKey }], macKeys, algorithm: 'RS256' }), undefined, 'a ring of key pairs, the older one public only')
  t.equal(await refusal({ secret: SECRET, macKeys }), undefined, 'macKeys beside a single secret')
  t.equal(await refusal({ secret: SECRET, macKeys: [{ kid: 'm1', secret: Buffer.alloc(32, 3) }] }), undefined, 'a MAC key of exactly 32 bytes')
})
