import { createHmac, createPrivateKey, generateKeyPairSync, hkdfSync } from 'node:crypto'
import t from 'tap'
import { createKeyOf, hmac, randomToken, safeEqual, sha256 } from '../lib/crypto.js'
import { parseTokenOptions } from '../lib/tokens/jwt.js'

/**
 * The primitives on their own. Most of the suite reaches them only through a
 * login, where a wrong encoding or a reused random byte would still let every
 * request through: these cases pin each one down (found by mutation testing).
 */

const BASE64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/

t.test('randomToken: base64url of the bytes asked for, never the same bytes twice, across pool refills', async (t) => {
  // 4096 bytes per pool: 300 tokens of 32 bytes draw from three pools.
  const tokens = Array.from({ length: 300 }, () => randomToken(32))
  t.ok(tokens.every((token) => BASE64URL_32_BYTES.test(token)), 'every token is 43 base64url characters')
  t.equal(new Set(tokens).size, tokens.length, 'no token repeats')
  t.equal(Buffer.from(randomToken(16), 'base64url').length, 16)
})

t.test('sha256 and hmac: base64url digests', async (t) => {
  // FIPS 180-2 and RFC 4231 test case 2.
  t.equal(sha256('abc'), Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex').toString('base64url'))
  t.equal(hmac(Buffer.from('Jefe'), 'what do ya want for nothing?'),
    Buffer.from('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'hex').toString('base64url'))
})

t.test('safeEqual: equal strings only, and unequal lengths answer false rather than throw', async (t) => {
  t.equal(safeEqual('abc', 'abc'), true)
  t.equal(safeEqual('abc', 'abd'), false)
  t.equal(safeEqual('abc', 'abcd'), false)
  t.equal(safeEqual('', 'a'), false)
})

t.test('createKeyOf: HMAC under a key derived with its own label, one name per purpose and value', async (t) => {
  const secret = 'a-signing-secret-of-at-least-32-characters'
  const keyOf = createKeyOf({ material: secret, privateKey: false })
  // The derivation docs/security.md describes: names must not change from one
  // version to the next, or every counter in a shared store is lost.
  const key = Buffer.from(hkdfSync('sha256', secret, '', 'fastify-session-guard store key names', 32))
  const expected = createHmac('sha256', key).update('login\0alice').digest().subarray(0, 16).toString('base64url')
  t.equal(keyOf('login', 'alice'), expected)
  t.match(keyOf('login', 'alice'), /^[A-Za-z0-9_-]{22}$/)
  t.not(keyOf('login', 'bob'), keyOf('login', 'alice'), 'another value, another name')
  t.not(keyOf('ip', 'alice'), keyOf('login', 'alice'), 'another purpose, another name')
  t.not(keyOf('logi', 'nalice'), keyOf('login', 'alice'), 'the purpose and the value are kept apart')
})

t.test('createKeyOf: an asymmetric key counts by its PKCS#8 DER bytes', async (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }) as string
  const der = createPrivateKey(pkcs8).export({ type: 'pkcs8', format: 'der' })
  const key = Buffer.from(hkdfSync('sha256', der, '', 'fastify-session-guard store key names', 32))
  const expected = createHmac('sha256', key).update('login\0alice').digest().subarray(0, 16).toString('base64url')
  t.equal(createKeyOf({ material: pkcs8, privateKey: true })('login', 'alice'), expected)
  t.equal(createKeyOf({ material: sec1, privateKey: true })('login', 'alice'), expected, 'another spelling of the key, the same names')
})

t.test('a single key pair names store keys by its private key, whatever its spelling; a secret or macKeys by their bytes', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const public_ = publicKey.export({ type: 'spki', format: 'pem' }) as string
  const names = (options: Parameters<typeof parseTokenOptions>[0]): string => createKeyOf(parseTokenOptions(options).keyNames)('login', 'alice')
  const pkcs8 = names({ keys: { private: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, public: public_ }, algorithm: 'ES256' })
  t.equal(names({ keys: { private: privateKey.export({ type: 'sec1', format: 'pem' }) as string, public: public_ }, algorithm: 'ES256' }), pkcs8, 'SEC1 or PKCS#8: the same names')
  const secret = 'a-secret-of-at-least-32-bytes!!!'
  t.equal(names({ secret }), createKeyOf({ material: secret, privateKey: false })('login', 'alice'), 'a secret: its own bytes')
  t.equal(names({ secret, macKeys: [{ kid: 'm1', secret: `${secret}-mac` }] }), createKeyOf({ material: `${secret}-mac`, privateKey: false })('login', 'alice'), 'macKeys: the current one')
})
