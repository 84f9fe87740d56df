import { createHmac, hkdfSync } from 'node:crypto'
import t from 'tap'
import { DeviceTokens } from '../lib/tokens/device-tokens.js'
import { EPOCH, SECRET } from './helper.js'

/**
 * "Remember this device" tokens on their own: the MAC key derivation (a
 * remembered device must outlive an upgrade), the binding to the user, the
 * deadline, and the refusal of anything else as `undefined`, never a throw.
 */

const OTHER = `${SECRET}-other`
const ring = (...keys: Array<[string, string]>): DeviceTokens => new DeviceTokens(keys.map(([kid, material]) => ({ kid, material })))

const DEVICE = { deviceId: 'A'.repeat(22), link: 'b'.repeat(22), issuedAt: EPOCH, expiresAt: EPOCH + 1000 }

/** The MAC the documented derivation gives: HMAC-SHA-256 under HKDF-SHA-256 of the secret, a label of its own, over the body and the user id. */
function mac (body: string, userId: string, secret: string = SECRET): string {
  const key = Buffer.from(hkdfSync('sha256', secret, '', 'fastify-session-guard device token', 32))
  return createHmac('sha256', key).update(`${body}\0${userId}`).digest('base64url')
}

t.test('a token is d2.<MAC key version>.<device id>.<link>.<issued at>.<expires at>.<MAC>, the user in the MAC only', async (t) => {
  const tokens = ring(['default', SECRET])
  const token = tokens.issue('alice', DEVICE)
  const body = `d2.default.${DEVICE.deviceId}.${DEVICE.link}.${EPOCH.toString(36)}.${(EPOCH + 1000).toString(36)}`
  t.equal(token, `${body}.${mac(body, 'alice')}`)
  t.notOk(token.includes('alice'), 'the token does not name its user')
  t.strictSame(tokens.open(token, 'alice', EPOCH), DEVICE)
  t.ok(token.length <= 136)
  const longest = ring(['k'.repeat(64), SECRET]).issue('alice', { ...DEVICE, issuedAt: Number.MAX_SAFE_INTEGER, expiresAt: Number.MAX_SAFE_INTEGER })
  t.equal(longest.length, 181, 'the longest token: a 64-character version, 11-digit times')
  t.ok(ring(['k'.repeat(64), SECRET]).open(longest, 'alice', EPOCH), 'opens')
})

t.test('a d1 token (written before MAC key versions) opens under version default, and only there', async (t) => {
  const body = `d1.${DEVICE.deviceId}.${DEVICE.link}.${EPOCH.toString(36)}.${(EPOCH + 1000).toString(36)}`
  const legacy = `${body}.${mac(body, 'alice')}`
  t.strictSame(ring(['default', SECRET]).open(legacy, 'alice', EPOCH), DEVICE)
  t.strictSame(ring(['v2', OTHER], ['default', SECRET]).open(legacy, 'alice', EPOCH), DEVICE, 'while default is an older version')
  t.equal(ring(['v2', SECRET]).open(legacy, 'alice', EPOCH), undefined, 'the same secret under another version')
  t.equal(ring(['default', SECRET]).open(`d1.default.${body.slice(3)}.${mac(`d1.default.${body.slice(3)}`, 'alice')}`, 'alice', EPOCH), undefined, 'a d1 token with a version')
})

t.test('the first version writes new tokens, and every version held opens its own', async (t) => {
  const old = ring(['v1', SECRET]).issue('alice', DEVICE)
  const during = ring(['v2', OTHER], ['v1', SECRET])
  const fresh = during.issue('alice', DEVICE)
  t.equal(fresh.split('.')[1], 'v2')
  t.equal(fresh.split('.')[6], mac(fresh.slice(0, fresh.lastIndexOf('.')), 'alice', OTHER))
  t.strictSame(during.open(old, 'alice', EPOCH), DEVICE, 'an older version still opens its tokens')
  t.strictSame(during.open(fresh, 'alice', EPOCH), DEVICE)
  t.equal(ring(['v2', OTHER]).open(old, 'alice', EPOCH), undefined, 'a version removed opens nothing')
})

t.test('a token opens for its own user only', async (t) => {
  const tokens = ring(['default', SECRET])
  const token = tokens.issue('alice', DEVICE)
  t.equal(tokens.open(token, 'bob', EPOCH), undefined, 'bob')
  t.equal(tokens.open(token, 'alice\0', EPOCH), undefined, 'a user id that merely starts with alice\'s')
  t.equal(ring(['default', OTHER]).open(token, 'alice', EPOCH), undefined, 'another secret')
})

t.test('a token counts until its deadline, not at it', async (t) => {
  const tokens = ring(['default', SECRET])
  const token = tokens.issue('alice', DEVICE)
  t.ok(tokens.open(token, 'alice', EPOCH + 999))
  t.equal(tokens.open(token, 'alice', EPOCH + 1000), undefined)
})

t.test('anything but a token we wrote opens as undefined', async (t) => {
  const tokens = ring(['default', SECRET])
  const token = tokens.issue('alice', DEVICE)
  const parts = token.split('.')
  const remac = (body: string): string => `${body}.${mac(body, 'alice')}`
  const cases: Record<string, string> = {
    'another version': remac(['d3', ...parts.slice(1, 6)].join('.')),
    'a d1 token of seven parts': remac(['d1', ...parts.slice(1, 6)].join('.')),
    'a MAC key version not held': remac(['d2', 'v9', ...parts.slice(2, 6)].join('.')),
    'a short device id': remac(['d2', parts[1], 'A'.repeat(21), ...parts.slice(3, 6)].join('.')),
    'a short link': remac(['d2', parts[1], parts[2], 'b'.repeat(21), ...parts.slice(4, 6)].join('.')),
    'a time out of base 36': remac([...parts.slice(0, 4), 'ZZ', parts[5]].join('.')),
    'an expiry out of base 36': remac([...parts.slice(0, 5), '-1'].join('.')),
    'six parts': parts.slice(0, 6).join('.'),
    'eight parts': `${token}.x`,
    'an altered body': token.replace('AAAA', 'AAAB'),
    'an altered MAC': token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA'),
    'too long': `${token}${'A'.repeat(200)}`,
    empty: ''
  }
  for (const [name, value] of Object.entries(cases)) t.equal(tokens.open(value, 'alice', EPOCH), undefined, name)
})

t.test('a well-signed token that no version writes is refused all the same: the shape is checked, not only the MAC', async (t) => {
  const tokens = ring(['default', SECRET])
  // Signed with the right key (as if a key had leaked), each with one part out of shape.
  const signed = (parts: { deviceId?: string, link?: string, issued?: string, expires?: string }): string => {
    const body = `d2.default.${parts.deviceId ?? DEVICE.deviceId}.${parts.link ?? DEVICE.link}.${parts.issued ?? EPOCH.toString(36)}.${parts.expires ?? (EPOCH + 1000).toString(36)}`
    return `${body}.${mac(body, 'alice')}`
  }
  t.ok(tokens.open(signed({}), 'alice', EPOCH), 'the control opens')
  for (const [name, parts] of [
    ['a device id of 23 characters', { deviceId: `${DEVICE.deviceId}x` }],
    ['a device id with a character before it', { deviceId: `+${DEVICE.deviceId}` }],
    ['a link of 23 characters', { link: `${DEVICE.link}x` }],
    ['a link with a character before it', { link: `+${DEVICE.link}` }],
    ['an issue time with a character after it', { issued: `${EPOCH.toString(36)}+` }],
    ['an issue time with a character before it', { issued: `+${EPOCH.toString(36)}` }],
    ['a deadline with a character after it', { expires: `${(EPOCH + 1000).toString(36)}+` }],
    ['a deadline with a character before it', { expires: `+${(EPOCH + 1000).toString(36)}` }]
  ] as const) {
    t.equal(tokens.open(signed(parts), 'alice', EPOCH), undefined, name)
  }
  const rest = `${DEVICE.deviceId}.${DEVICE.link}.${EPOCH.toString(36)}.${(EPOCH + 1000).toString(36)}`
  const malformed: Array<[string, string]> = [['a d2 token with a part too many', `d2.default.extra.${rest}`], ['a d1 token with a part too many', `d1.extra.${rest}`], ['a version no one writes', `d9.${rest}`]]
  for (const [name, body] of malformed) {
    t.equal(tokens.open(`${body}.${mac(body, 'alice')}`, 'alice', EPOCH), undefined, name)
  }
  const longKid = 'k'.repeat(65)
  const tooLong = ring([longKid, SECRET]).issue('alice', { ...DEVICE, issuedAt: Number.MAX_SAFE_INTEGER, expiresAt: Number.MAX_SAFE_INTEGER })
  t.equal(tooLong.length, 182)
  t.equal(ring([longKid, SECRET]).open(tooLong, 'alice', EPOCH), undefined, 'one character over the longest token a version writes')
})
