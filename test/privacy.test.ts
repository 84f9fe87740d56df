import { createHmac } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import t from 'tap'
import { MAX_USER_AGENT_LENGTH } from '../lib/devices/device.js'
import { createPrivacyPolicy, hashIp, keepUserAgent, normalizeIp, truncateIp } from '../lib/devices/privacy.js'

const SALT = 'a-secret-ip-salt-that-is-long-enough-0123'
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'

t.test('defaults: truncated IP, user agent dropped', async (t) => {
  const policy = createPrivacyPolicy()
  t.equal(policy.ipMode, 'truncated')
  t.equal(policy.keepUserAgent, false)
  t.equal(policy.ip('203.0.113.77'), '203.0.113.0')
  t.equal(policy.ip('2001:db8:85a3:8d3:1319:8a2e:370:7348'), '2001:db8:85a3::')
  t.equal(policy.ip(undefined), undefined)
  t.equal(policy.userAgent(FIREFOX), undefined)
  t.ok(Object.isFrozen(policy))
})

t.test('full keeps the address, in canonical form', async (t) => {
  const policy = createPrivacyPolicy({ ipMode: 'full' })
  t.equal(policy.ip('203.0.113.77'), '203.0.113.77')
  t.equal(policy.ip('::ffff:203.0.113.77'), '203.0.113.77', 'IPv4-mapped IPv6 is IPv4')
  t.equal(policy.ip('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1', 'RFC 5952 form')
  t.equal(policy.ip('fe80::1%eth0'), 'fe80::1', 'zone id dropped')
  t.equal(policy.ip(undefined), undefined)
  t.equal(policy.ip('not an ip'), undefined, 'garbage from a proxy header is not kept')
})

t.test('none keeps nothing', async (t) => {
  const policy = createPrivacyPolicy({ ipMode: 'none' })
  t.equal(policy.ip('203.0.113.77'), undefined)
  t.equal(policy.ip('2001:db8::1'), undefined)
  t.equal(policy.ip(undefined), undefined)
})

t.test('truncated: IPv4 to /24', async (t) => {
  const cases: Array<[string, string]> = [
    ['203.0.113.77', '203.0.113.0'],
    ['10.0.0.1', '10.0.0.0'],
    ['255.255.255.255', '255.255.255.0'],
    ['0.0.0.0', '0.0.0.0'],
    ['127.0.0.1', '127.0.0.0'],
    ['::ffff:203.0.113.77', '203.0.113.0'],
    ['::FFFF:203.0.113.77', '203.0.113.0'],
    ['0:0:0:0:0:ffff:203.0.113.77', '203.0.113.0'],
    ['::ffff:cb00:714d', '203.0.113.0']
  ]
  for (const [ip, expected] of cases) t.equal(truncateIp(ip), expected, ip)
})

t.test('truncated: IPv6 to /48', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8:85a3:8d3:1319:8a2e:370:7348', '2001:db8:85a3::'],
    ['2001:0db8:85a3:0000:0000:8a2e:0370:7334', '2001:db8:85a3::'],
    ['2001:DB8:85A3::8A2E:370:7334', '2001:db8:85a3::'],
    ['2001:db8::1', '2001:db8::'],
    ['2001::1', '2001::'],
    ['::1', '::'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::'],
    ['fe80::abcd:1%25', 'fe80::'],
    ['64:ff9b::192.0.2.33', '64:ff9b::'],
    ['2606:4700:4700::1111', '2606:4700:4700::'],
    ['1:2:3:4:5:6:7:8', '1:2:3::'],
    ['0:1:0:0:5:6:7:8', '0:1::']
  ]
  for (const [ip, expected] of cases) t.equal(truncateIp(ip), expected, ip)
  t.equal(truncateIp('[2001:db8::1]'), undefined, 'brackets are not part of an address')
  t.equal(truncateIp('203.0.113.7:443'), undefined, 'nor is a port')
  t.equal(truncateIp('01.2.3.4'), undefined, 'ambiguous octal-looking IPv4')
  t.equal(truncateIp(''), undefined)
})

t.test('an IPv4-compatible address (::a.b.c.d, deprecated) reads as its IPv4 address, as ipaddr.js and the lockout read it', async (t) => {
  t.equal(normalizeIp('::203.0.113.77'), '203.0.113.77')
  t.equal(truncateIp('::203.0.113.77'), '203.0.113.0')
  t.equal(normalizeIp('::cb00:714d'), '::cb00:714d', 'written in hex it stays IPv6, as ipaddr.js reads it')
  t.equal(normalizeIp('127.1'), undefined, 'the classful inet_aton forms ipaddr.js also takes are refused')
  t.equal(normalizeIp('0x7f.0.0.1'), undefined)
})

t.test('canonical IPv6 text (RFC 5952)', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not shortened
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'] // IPv4-translated, not mapped: stays IPv6
  ]
  for (const [ip, expected] of cases) t.equal(normalizeIp(ip), expected, ip)
})

t.test('hashed: keyed, compact, stable across notations', async (t) => {
  const policy = createPrivacyPolicy({ ipMode: 'hashed', ipSalt: SALT })
  const hash = policy.ip('203.0.113.77') as string
  t.match(hash, /^[A-Za-z0-9_-]{22}$/, '16 bytes as base64url')
  const expected = createHmac('sha256', SALT).update('203.0.113.77').digest().subarray(0, 16).toString('base64url')
  t.equal(hash, expected, 'HMAC-SHA-256 of the address, first 16 bytes')
  t.equal(policy.ip('::ffff:203.0.113.77'), hash, 'the IPv4-mapped form hashes as IPv4')
  t.not(policy.ip('203.0.113.78'), hash, 'a neighbour hashes differently')
  t.equal(policy.ip('2001:DB8::0001'), policy.ip('2001:db8::1'), 'IPv6 notations agree')
  t.equal(policy.ip('fe80::1%eth0'), policy.ip('fe80::1%eth1'), 'the zone id is not hashed')
  t.equal(policy.ip(undefined), undefined)
  t.equal(policy.ip('garbage'), undefined)

  const other = createPrivacyPolicy({ ipMode: 'hashed', ipSalt: Buffer.from(SALT.replace('a-', 'b-')) })
  t.not(other.ip('203.0.113.77'), hash, 'another salt, another hash')
  t.equal(hashIp('203.0.113.77', Buffer.from(SALT)), hash, 'hashIp agrees with the policy')
  t.equal(hashIp('nope', Buffer.from(SALT)), undefined)
})

t.test('the hashed mode needs a long secret salt', async (t) => {
  const invalid = { code: 'FST_SESSION_GUARD_INVALID_OPTION', statusCode: 500 }
  t.throws(() => createPrivacyPolicy({ ipMode: 'hashed' }), { ...invalid, message: /"privacy\.ipSalt"/ })
  t.throws(() => createPrivacyPolicy({ ipMode: 'hashed', ipSalt: 'short' }), { ...invalid, message: /at least 32 bytes/ })
  t.throws(() => createPrivacyPolicy({ ipMode: 'hashed', ipSalt: 42 as unknown as string }), invalid)
  t.throws(() => createPrivacyPolicy({ ipMode: 'hashed', ipSalt: Buffer.alloc(31) }), invalid, 'a 31-byte Buffer')
  t.doesNotThrow(() => createPrivacyPolicy({ ipMode: 'hashed', ipSalt: Buffer.alloc(32, 7) }), 'a 32-byte Buffer')
  t.doesNotThrow(() => createPrivacyPolicy({ ipMode: 'truncated', ipSalt: 'short' }), 'the salt matters only when hashing')
})

t.test('bad options name themselves', async (t) => {
  t.throws(() => createPrivacyPolicy({ ipMode: 'masked' as never }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"privacy\.ipMode": must be 'full', 'truncated', 'hashed' or 'none', got "masked"/ })
  t.throws(() => createPrivacyPolicy({ keepUserAgent: 'yes' as never }), { message: /"privacy\.keepUserAgent": must be a boolean/ })
  t.throws(() => createPrivacyPolicy({ ipMode: 'nope' as never }, 'devices.privacy'), { message: /"devices\.privacy\.ipMode"/ }, 'under the caller\'s prefix')
})

t.test('keepUserAgent: kept, cut and interned', async (t) => {
  const policy = createPrivacyPolicy({ keepUserAgent: true })
  t.equal(policy.keepUserAgent, true)
  const a = policy.userAgent([FIREFOX].join(''))
  const b = policy.userAgent([FIREFOX].join(''))
  t.equal(a, FIREFOX)
  t.equal(a, b)
  t.equal(policy.userAgent(undefined), undefined)
  t.equal(policy.userAgent(''), undefined)
  const huge = 'x'.repeat(10_000)
  t.equal(policy.userAgent(huge)?.length, MAX_USER_AGENT_LENGTH, 'cut to 512 characters')

  const intern = new LRUCache<string, string>({ max: 2 })
  t.equal(keepUserAgent([FIREFOX].join(''), intern), FIREFOX)
  t.equal(keepUserAgent([FIREFOX].join(''), intern), FIREFOX)
  t.equal(intern.size, 1, 'one string held for any number of equal user agents')
  keepUserAgent('curl/1', intern)
  keepUserAgent('curl/2', intern)
  t.equal(intern.size, 2, 'the intern table is bounded')
  t.equal(keepUserAgent(FIREFOX), FIREFOX, 'without an intern table')
  t.equal(keepUserAgent(huge)?.length, MAX_USER_AGENT_LENGTH)
  t.equal(keepUserAgent(undefined), undefined)
  t.equal(keepUserAgent('curl/8\u0000'), undefined, 'a control character: malformed, not kept (PostgreSQL cannot hold U+0000)')
  t.equal(keepUserAgent('curl/8\u001f'), undefined)
  t.equal(keepUserAgent('curl\t8'), 'curl\t8', 'a tab is no control character in a field value')
  t.equal(createPrivacyPolicy({ keepUserAgent: false }).userAgent(FIREFOX), undefined, 'dropped')
})
