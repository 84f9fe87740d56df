import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { LockoutOptions } from '../lib/index.js'
import { registrationError, SECRET } from './helper.js'
import { attempt, withLogin } from './login-helper.js'

/** The IP scope of the lockout counts a client's network, whatever the address's spelling. */

/**
 * Fails once from each of `addresses` (one username each, so only the IP
 * scope adds up), with as many free attempts as addresses: then `same` must
 * be locked, and `other` must not.
 */
async function oneClient (t: Test, addresses: string[], same: string, other: string, lockout: LockoutOptions = {}): Promise<void> {
  const h = await withLogin(t, { lockout: { ...lockout, ipFreeAttempts: addresses.length } })
  for (const [i, address] of addresses.entries()) t.equal((await attempt(h, `user-${i}`, 'wrong', address)).statusCode, 401, `from ${address}`)
  t.equal((await attempt(h, 'next', 'wrong', same)).statusCode, 429, `${same} is the same client: locked`)
  t.equal((await attempt(h, 'next', 'wrong', other)).statusCode, 401, `${other} is another client`)
}

t.test('an IPv4 client is one client whether the socket reports it as IPv4 or IPv4-mapped IPv6', async (t) => {
  await oneClient(t, ['192.0.2.10', '::ffff:192.0.2.10', '::FFFF:c000:020a'], '192.0.2.10', '192.0.2.11')
})

t.test('every address of one IPv6 /64 shares the IP\'s attempts', async (t) => {
  await oneClient(t, ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:fffe', '2001:0DB8:0001:0002:0000:0000:0000:0003'], '2001:db8:1:2::4', '2001:db8:1:3::1')
})

t.test('lockout.ipv6Prefix sets the network an IPv6 client is counted under', async (t) => {
  await oneClient(t, ['2001:db8:1:2::1', '2001:db8:1:ffff::1'], '2001:db8:1:7::9', '2001:db8:2::1', { ipv6Prefix: 48 })
  await oneClient(t, ['2001:db8::1', '2001:db8::1'], '2001:db8:0::1', '2001:db8::2', { ipv6Prefix: 128 })
  await oneClient(t, ['2001:db8::1', '7fff::1'], '::2', '8000::1', { ipv6Prefix: 1 })

  for (const ipv6Prefix of [0, 129, 64.5, -64, Number.NaN, '64']) {
    t.match(await registrationError({ secret: SECRET, lockout: { ipv6Prefix } }), {
      code: 'FST_SESSION_GUARD_INVALID_OPTION',
      message: /"lockout\.ipv6Prefix": must be an integer from 1 to 128/
    }, `ipv6Prefix ${String(ipv6Prefix)} is refused`)
  }
})

t.test('a client that is not an IP address (a proxy header can carry anything) is still counted, by what it says', async (t) => {
  await oneClient(t, ['unknown', 'unknown'], 'unknown', 'Unknown')
})

t.test('a login over a Unix socket, with no client IP at all, is counted by username only', async (t) => {
  const h = await withLogin(t)
  const path = join(tmpdir(), `session-guard-${process.pid}-${Date.now()}.sock`)
  await h.app.listen({ path })
  const login = async (username: string, password: string): Promise<{ status: number, body: string }> => await new Promise((resolve, reject) => {
    const body = JSON.stringify({ username, password })
    const req = httpRequest({ socketPath: path, method: 'POST', path: '/password-login', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode as number, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })

  const first = await login('alice', 'wrong')
  t.equal(first.status, 401, `a wrong password is a 401, not a 500 (${first.body})`)
  t.equal((await login('bob', 'right')).status, 200, 'the right one logs in')
  for (let i = 0; i < 4; i++) await login('alice', 'wrong')
  t.equal((await login('alice', 'right')).status, 429, 'the username is locked after its 5 failures')
  t.equal((await login('carol', 'wrong')).status, 401, 'and only the username: there is no IP to lock')
})
