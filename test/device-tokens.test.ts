import { createHmac, hkdfSync } from 'node:crypto'
import t from 'tap'
import { DeviceTokens } from '../lib/tokens/device-tokens.js'
import { EPOCH, SECRET } from './helper.js'

/**
 * "Remember this device" tokens on their own: the MAC key derivation (a
 * remembered device must outlive an upgrade), the binding to the user, the
 * deadline, and the refusal of anything else as `undefined`, never a throw.
 */

const DEVICE = { deviceId: 'A'.repeat(22), link: 'b'.repeat(22), issuedAt: EPOCH, expiresAt: EPOCH + 1000 }

/** The MAC the documented derivation gives: HMAC-SHA-256 under HKDF-SHA-256 of the secret, a label of its own, over the body and the user id. */
function mac (body: string, userId: string): string {
  const key = Buffer.from(hkdfSync('sha256', SECRET, '', 'fastify-session-guard device token', 32))
  return createHmac('sha256', key).update(`${body}\0${userId}`).digest('base64url')
}

t.test('a token is d1.<device id>.<link>.<issued at>.<expires at>.<MAC>, the user in the MAC only', async (t) => {
  const tokens = new DeviceTokens(SECRET)
  const token = tokens.issue('alice', DEVICE)
  const body = `d1.${DEVICE.deviceId}.${DEVICE.link}.${EPOCH.toString(36)}.${(EPOCH + 1000).toString(36)}`
  t.equal(token, `${body}.${mac(body, 'alice')}`)
  t.notOk(token.includes('alice'), 'the token does not name its user')
  t.strictSame(tokens.open(token, 'alice', EPOCH), DEVICE)
  t.ok(token.length <= 128)
})

t.test('a token opens for its own user only', async (t) => {
  const tokens = new DeviceTokens(SECRET)
  const token = tokens.issue('alice', DEVICE)
  t.equal(tokens.open(token, 'bob', EPOCH), undefined, 'bob')
  t.equal(tokens.open(token, 'alice\0', EPOCH), undefined, 'a user id that merely starts with alice\'s')
  t.equal(new DeviceTokens(`${SECRET}-other`).open(token, 'alice', EPOCH), undefined, 'another secret')
})

t.test('a token counts until its deadline, not at it', async (t) => {
  const tokens = new DeviceTokens(SECRET)
  const token = tokens.issue('alice', DEVICE)
  t.ok(tokens.open(token, 'alice', EPOCH + 999))
  t.equal(tokens.open(token, 'alice', EPOCH + 1000), undefined)
})

t.test('anything but a token we wrote opens as undefined', async (t) => {
  const tokens = new DeviceTokens(SECRET)
  const token = tokens.issue('alice', DEVICE)
  const parts = token.split('.')
  const remac = (body: string): string => `${body}.${mac(body, 'alice')}`
  const cases: Record<string, string> = {
    'another version': remac(['d2', ...parts.slice(1, 5)].join('.')),
    'a short device id': remac(['d1', 'A'.repeat(21), ...parts.slice(2, 5)].join('.')),
    'a short link': remac(['d1', parts[1], 'b'.repeat(21), ...parts.slice(3, 5)].join('.')),
    'a time out of base 36': remac([...parts.slice(0, 3), 'ZZ', parts[4]].join('.')),
    'an expiry out of base 36': remac([...parts.slice(0, 4), '-1'].join('.')),
    'five parts': parts.slice(0, 5).join('.'),
    'seven parts': `${token}.x`,
    'an altered body': token.replace('AAAA', 'AAAB'),
    'an altered MAC': token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA'),
    'too long': `${token}${'A'.repeat(200)}`,
    empty: ''
  }
  for (const [name, value] of Object.entries(cases)) t.equal(tokens.open(value, 'alice', EPOCH), undefined, name)
})
