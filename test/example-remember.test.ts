import t from 'tap'
import { DEMO_ADDRESSES } from '../examples/geo.js'
import { buildServer } from '../examples/server.js'

/**
 * The example's "Remember this device" checkbox: the same box that asks for a
 * long session asks to remember the device, and only a vouched sign-in (not
 * flagged or challenged, or once its step-up is done) gets the device cookie.
 */

const DEVICE_COOKIE = '__Host-sg-dev'

t.test('the example: "Remember this device" writes the device cookie for a vouched sign-in, and at the step-up of a challenged one', async (t) => {
  const lines: string[] = []
  const app = await buildServer({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  t.teardown(() => app.close())
  const from = async (ip: string, remember: boolean) =>
    await app.inject({ method: 'POST', url: '/login', payload: { username: 'bob', password: 'demo-password', remember }, headers: { 'x-forwarded-for': ip } })
  const cookieOf = (response: Awaited<ReturnType<typeof from>>) => (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === DEVICE_COOKIE)

  const unchecked = await from(DEMO_ADDRESSES.paris, false)
  t.equal(cookieOf(unchecked), undefined, 'box unchecked: no device cookie')
  const paris = await from(DEMO_ADDRESSES.paris, true)
  t.match(cookieOf(paris), { httpOnly: true, secure: true, path: '/', sameSite: 'Lax' }, 'box checked, nothing flagged: remembered')

  const sydney = await from(DEMO_ADDRESSES.sydney, true)
  t.equal(sydney.json().stepUp, true)
  t.equal(cookieOf(sydney), undefined, 'challenged: not remembered, though asked')
  const code = lines.map((line) => JSON.parse(line) as { msg: string, code?: string }).find((line) => line.msg.startsWith('step-up code'))?.code as string
  const cookie = (sydney.cookies as Array<{ name: string, value: string }>).map((c) => `${c.name}=${c.value}`).join('; ')
  const done = await app.inject({
    method: 'POST',
    url: '/step-up',
    headers: { authorization: `Bearer ${sydney.json().accessToken as string}`, cookie, 'x-forwarded-for': DEMO_ADDRESSES.sydney },
    payload: { code }
  })
  t.strictSame(done.json(), { completed: true })
  t.ok(cookieOf(done), 'the step-up vouched for it: remembered now')
})
