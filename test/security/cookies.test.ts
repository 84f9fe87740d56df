import { createHash } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { memoryStore, type SessionGuardOptions } from '../../lib/index.js'
import { type Credentials, type Harness, MINUTE } from '../helper.js'
import { assertGuardRefused, assertRefreshRefused, assertUntouched, callMe, claimsOf, refreshByCookie, refreshed, setup, snapshot } from './setup.js'

/**
 * Attacks on the fingerprint cookie (the token-sidejacking defence): every
 * case carries alice's real, unexpired access token, so only the cookie check
 * stands between the request and her session.
 */

const NAME = '__Host-sg-fp'
const valueOf = (cookie: string): string => cookie.slice(cookie.indexOf('=') + 1)

t.test('the guard refuses every fingerprint cookie but the one bound to the token, and changes nothing', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  const fp = valueOf(alice.fingerprint)
  const fph = claimsOf(alice.accessToken).fph as string
  // Past the touch interval: an accepted request would write lastSeenAt, which the snapshot would catch.
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice, bob], ['alice', 'bob'])

  const others = Array.from({ length: 498 }, (_, i) => `c${i}=v${i}`).join('; ')
  const cases: Array<[string, string | undefined]> = [
    ['no cookie header', undefined],
    ['a cookie header without the fingerprint', 'theme=dark'],
    ['an empty fingerprint', `${NAME}=`],
    ['a fingerprint without "="', NAME],
    ["bob's fingerprint (swapped between users)", bob.fingerprint],
    ['the fingerprint hash (from the token) as the cookie', `${NAME}=${fph}`],
    ['the SHA-256 of the hash', `${NAME}=${createHash('sha256').update(fph).digest('base64url')}`],
    ['one character changed', `${NAME}=${fp.slice(0, -1)}${fp.endsWith('A') ? 'B' : 'A'}`],
    ['one character short', `${NAME}=${fp.slice(0, -1)}`],
    ['one character long', `${NAME}=${fp}A`],
    ['upper-cased', `${NAME}=${fp.toUpperCase() === fp ? fp.toLowerCase() : fp.toUpperCase()}`],
    ['as standard base64 with padding', `${NAME}=${Buffer.from(fp, 'base64url').toString('base64')}`],
    ['8 KB', `${NAME}=${'A'.repeat(8192)}`],
    ['64 KB', `${NAME}=${fp}${'A'.repeat(65536)}`],
    ['non-ASCII (raw UTF-8)', `${NAME}=${'é'.repeat(43)}`],
    ['non-ASCII (percent-encoded)', `${NAME}=${encodeURIComponent('ü'.repeat(43))}`],
    ['percent-encoded control characters', `${NAME}=${'%00'.repeat(43)}`],
    ['malformed percent-encoding', `${NAME}=%${'Z'.repeat(42)}`],
    ['broken percent-encoding', `${NAME}=%E0%A4%A${fp.slice(9)}`],
    ['quoted', `${NAME}="${fp}"`],
    ['the value with a trailing NUL', `${NAME}=${fp}%00`],
    ['duplicated, same value', `${alice.fingerprint}; ${alice.fingerprint}`],
    ['duplicated, the real one second', `${bob.fingerprint}; ${alice.fingerprint}`],
    ['duplicated, the real one first', `${alice.fingerprint}; ${bob.fingerprint}`],
    ['duplicated, the second with another case', `${alice.fingerprint}; __host-sg-fp=${valueOf(bob.fingerprint)}`],
    ['duplicated, the second upper-cased', `${alice.fingerprint}; __HOST-SG-FP=${valueOf(bob.fingerprint)}`],
    ['duplicated, the second with a space before "="', `${alice.fingerprint}; ${NAME} =${valueOf(bob.fingerprint)}`],
    ['duplicated, the second with spaces around the name', `${alice.fingerprint};   ${NAME}  =${fp}`],
    ['duplicated, the first with a tab before "="', `${NAME}\t=${fp}; ${alice.fingerprint}`],
    ['under the __Secure- prefix instead of __Host-', `__Secure-sg-fp=${fp}`],
    ['without a prefix', `sg-fp=${fp}`],
    ['in the refresh cookie', `__Secure-sg-rt=${fp}`],
    ['among 500 cookies, duplicated', `${others}; ${alice.fingerprint}; ${NAME}=${fp}`]
  ]
  for (const [name, cookie] of cases) {
    assertGuardRefused(t, await callMe(h.app, alice.accessToken, cookie), name)
  }
  await assertUntouched(t, h.app, before, 'after every refused cookie', [alice, bob], ['alice', 'bob'])

  // The control: the same token with the right cookie works, and this request writes.
  t.equal((await h.me(alice)).statusCode, 200, 'the real cookie still works')
  t.equal((await h.app.sessions.get(alice.sessionId))?.lastSeenAt, h.clock.now, 'an accepted request is what extends a session')
})

t.test('cookies that merely look like the fingerprint cookie are not duplicates', async (t) => {
  // A cookie planted on a sibling domain with a name that contains ours, or a
  // value that does, must not lock the user out (it is not our cookie).
  const h = await setup(t)
  const alice = await h.login('alice')
  const fp = valueOf(alice.fingerprint)
  const cases: Array<[string, string]> = [
    ['another cookie whose name ends with ours', `x${NAME}=1; ${alice.fingerprint}`],
    ['another cookie whose value contains ours', `other=${NAME}=${fp}; ${alice.fingerprint}`],
    ['another cookie whose name starts with ours', `${NAME}-old=1; ${alice.fingerprint}`],
    ['a nameless cookie equal to our name', `${NAME}; ${alice.fingerprint}`],
    ['500 cookies around it', `${Array.from({ length: 250 }, (_, i) => `a${i}=${i}`).join('; ')}; ${alice.fingerprint}; ${Array.from({ length: 249 }, (_, i) => `b${i}=${i}`).join('; ')}`],
    ['percent-encoded form of the real value (the parser decodes it to the same value)', `${NAME}=${[...fp].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join('')}`],
    ['spaces around the pair', `  ${NAME}=${fp}  `]
  ]
  for (const [name, cookie] of cases) {
    t.equal((await callMe(h.app, alice.accessToken, cookie)).statusCode, 200, name)
  }
})

t.test('the refresh route applies the same fingerprint rules and changes nothing when it refuses', async (t) => {
  const h = await setup(t)
  const alice = await h.login('alice')
  const bob = await h.login('bob')
  const fp = valueOf(alice.fingerprint)
  h.clock.advance(2 * MINUTE)
  const before = await snapshot(h.app, [alice, bob], ['alice', 'bob'])
  const cases: Array<[string, string]> = [
    ['no fingerprint', ''],
    ["bob's fingerprint", bob.fingerprint],
    ['the fingerprint hash', `${NAME}=${claimsOf(alice.accessToken).fph as string}`],
    ['an empty fingerprint', `${NAME}=`],
    ['8 KB', `${NAME}=${'A'.repeat(8192)}`],
    ['non-ASCII', `${NAME}=${encodeURIComponent('é'.repeat(43))}`],
    ['duplicated', `${alice.fingerprint}; ${bob.fingerprint}`],
    ['duplicated with another case', `${alice.fingerprint}; __HOST-sg-fp=${fp}`],
    ['duplicated with whitespace', `${alice.fingerprint}; ${NAME} =${fp}`],
    ['another prefix', `__Secure-sg-fp=${fp}`]
  ]
  for (const [name, cookie] of cases) {
    assertRefreshRefused(t, await refreshByCookie(h, alice.refreshToken, cookie), name)
  }
  await assertUntouched(t, h.app, before, 'after every refused refresh', [alice, bob], ['alice', 'bob'])
  const ok = await refreshByCookie(h, alice.refreshToken, alice.fingerprint)
  t.equal(ok.statusCode, 200, 'the real pair still refreshes: a forgery is not theft')
  t.equal((await h.me(refreshed(alice, ok))).statusCode, 200)
})

t.test('a login never adopts a fingerprint cookie the client brings', async (t) => {
  const h = await setup(t)
  const planted = `${NAME}=${'A'.repeat(43)}`
  const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'alice' }, headers: { cookie: planted } })
  t.equal(response.statusCode, 200)
  const issued = (response.cookies as Array<{ name: string, value: string }>).find((c) => c.name === NAME)
  t.ok(issued)
  t.not(issued?.value, 'A'.repeat(43), 'a fresh fingerprint')
  const { accessToken } = response.json()
  assertGuardRefused(t, await callMe(h.app, accessToken, planted), 'the planted cookie does not fit the new token')
})

/** The app of `setup()`, listening on 127.0.0.1: these cases send the raw `Cookie` header a browser would. */
async function listening (t: Test, options: Partial<SessionGuardOptions> = {}): Promise<{ h: Harness, refresh: (cookie: string) => Promise<Response> }> {
  const h = await setup(t, options)
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/refresh`
  return { h, refresh: async (cookie) => await fetch(url, { method: 'POST', headers: { cookie, 'x-requested-with': 'fetch' } }) }
}

/** Whether a response clears a cookie (an empty value that expired in 1970). */
function clears (response: Response): boolean {
  return response.headers.getSetCookie().some((cookie) => /^[^=]+=;/.test(cookie) && /Expires=Thu, 01 Jan 1970/.test(cookie))
}

t.test('cookie tossing: refresh cookies planted from a sibling domain, sent first, neither stand in for the real one nor sign the user out', async (t) => {
  const { h, refresh } = await listening(t)
  /** Alice two rotations in: her first refresh token is an older generation, her second the current one. */
  const victim = async (): Promise<{ alice: Credentials, older: string, previous: string }> => {
    let alice = await h.login('alice')
    const older = alice.refreshToken
    h.clock.advance(MINUTE)
    alice = refreshed(alice, await refreshByCookie(h, alice.refreshToken, alice.fingerprint))
    const previous = alice.refreshToken
    h.clock.advance(MINUTE)
    alice = refreshed(alice, await refreshByCookie(h, alice.refreshToken, alice.fingerprint))
    return { alice, older, previous }
  }
  const mallory = await h.login('mallory')
  const gone = await h.login('mallory')
  await h.app.sessions.revoke(gone.sessionId)

  const planted: Array<[string, (alice: Credentials, older: string) => string]> = [
    ['garbage', () => '__Secure-sg-rt=planted'],
    ["a token naming alice's session with a forged MAC", (alice) => `__Secure-sg-rt=${alice.refreshToken.slice(0, alice.refreshToken.lastIndexOf('.'))}.${'A'.repeat(43)}`],
    ["the attacker's own live refresh token", () => `__Secure-sg-rt=${mallory.refreshToken}`],
    ["the attacker's refresh token of a revoked session", () => `__Secure-sg-rt=${gone.refreshToken}`],
    ["an older refresh token of alice's, stolen", (_alice, older) => `__Secure-sg-rt=${older}`],
    ['garbage under another spelling of the name', () => '__SECURE-sg-rt=planted'],
    ['several of them', (_alice, older) => `__Secure-sg-rt=planted; __Secure-sg-rt=${mallory.refreshToken}; __Secure-sg-rt=${older}`]
  ]
  for (const [name, plant] of planted) {
    const { alice, older } = await victim()
    h.clock.advance(MINUTE)
    // Browsers send the cookie with the longer path first, then the older one: a planted cookie comes first.
    const response = await refresh(`${plant(alice, older)}; __Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`)
    t.equal(response.status, 200, `${name}: the real refresh cookie is used`)
    t.notOk(clears(response), `${name}: nothing cleared`)
    const next = response.headers.getSetCookie().find((cookie) => /^__Secure-sg-rt=[^;]/.test(cookie))
    t.ok(next, `${name}: a new refresh cookie`)
    const session = await h.app.sessions.get(alice.sessionId)
    t.equal(session?.refresh?.rotations, 3, `${name}: rotated, no reuse detected`)
    t.equal((await h.me(alice)).statusCode, 200, `${name}: the session lives on`)

    // With only the planted cookies, the refresh is refused, and alice's own cookies stay
    // (unless one is an older token of hers: presented alone with her fingerprint, that is theft).
    if (plant(alice, older).includes(older)) {
      const theft = await refresh(`${plant(alice, older)}; ${alice.fingerprint}`)
      t.equal(theft.status, 401, `${name} alone: theft`)
      t.ok(clears(theft), `${name} alone: her session is revoked, and its cookies go`)
      continue
    }
    const alone = await refresh(`${plant(alice, older)}; ${alice.fingerprint}`)
    t.equal(alone.status, 401, `${name} alone: refused`)
    t.notOk(clears(alone), `${name} alone: nothing cleared`)
  }
  t.match(await h.app.sessions.get(mallory.sessionId), { refresh: { rotations: 0 } }, "the attacker's planted session is not touched either")

  // Her previous token is still current until she uses its successor: planted first within the grace
  // window, it would make her refresh a parallel one (409). Her successor is the one used.
  const { alice, previous } = await victim()
  const response = await refresh(`__Secure-sg-rt=${previous}; __Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`)
  t.equal(response.status, 200, 'her previous token planted first: her newest is used')
  t.equal((await h.app.sessions.get(alice.sessionId))?.refresh?.rotations, 3)
})

t.test('at most 8 refresh cookies are looked at: a header full of them costs no more, and the client\'s own fits', async (t) => {
  const store = memoryStore()
  const { h, refresh } = await listening(t, { store })
  let reads = 0
  const get = store.get.bind(store)
  store.get = async (id, now) => {
    reads++
    return await get(id, now)
  }
  const alice = await h.login('alice')
  // Live sessions of the attacker's own, each a genuine token that costs a store read.
  const mallory = await Promise.all(Array.from({ length: 8 }, async () => await h.login('mallory')))
  const planted = (count: number): string => mallory.slice(0, count).map((m) => `__Secure-sg-rt=${m.refreshToken}`).join('; ')

  reads = 0
  const seven = await refresh(`${planted(7)}; __Secure-sg-rt=${alice.refreshToken}; ${alice.fingerprint}`)
  t.equal(seven.status, 200, "seven planted before it: alice's is the eighth, and used")
  t.equal(reads, 8, 'one read per session named')
  const next = seven.headers.getSetCookie().find((cookie) => cookie.startsWith('__Secure-sg-rt='))!
  const current = next.slice('__Secure-sg-rt='.length, next.indexOf(';'))

  reads = 0
  const eight = await refresh(`${planted(8)}; __Secure-sg-rt=${current}; ${alice.fingerprint}`)
  t.equal(eight.status, 401, 'eight planted before it: the ninth is not looked at')
  t.equal(reads, 8, 'and costs nothing')
  t.notOk(clears(eight), 'nothing cleared')
  t.equal((await refresh(`__Secure-sg-rt=${current}; ${alice.fingerprint}`)).status, 200, 'the token is still good')
})
