import { createHash, createPrivateKey, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { memoryStore, type SessionGuardOptions, type SessionStore } from '../lib/index.js'
import { redisStore } from '../lib/stores/redis/index.js'
import { SECRET } from './helper.js'
import { attempt, withLogin } from './login-helper.js'
import { deleteKeys, leftNoKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * What a dump of the store reveals. The lockout and the anomaly rules keep
 * counters under keys made from usernames, user ids, client addresses,
 * devices and countries; a key must be a keyed hash of them, so nobody holding
 * the dump but not the plugin's secret can test a guess against it.
 */

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
const USERNAMES = ['Alice', 'alice', 'bob']
const USER_IDS = ['alice', 'user-42']
const IPS = ['192.0.2.10', '2001:db8:1:2::7', '2001:db8:1:2::', '2001:db8:1:2::/64', '::ffff:198.51.100.4', '198.51.100.4']
const COUNTRY = 'NZ'

/** Logins and failures that make the lockout and every anomaly counter write a key. */
async function exercise (options: Partial<SessionGuardOptions>, t: Test): Promise<void> {
  const h = await withLogin(t, { ...options, resolveLocation: () => ({ country: COUNTRY, latitude: -41.3, longitude: 174.8 }) })
  t.equal((await attempt(h, 'Alice', 'wrong', '192.0.2.10')).statusCode, 401)
  t.equal((await attempt(h, 'bob', 'wrong', '::ffff:198.51.100.4')).statusCode, 401)
  t.equal((await attempt(h, 'alice', 'right', '2001:db8:1:2::7')).statusCode, 200)
  for (let i = 0; i < 2; i++) {
    const response = await h.app.inject({ method: 'POST', url: '/login', payload: { userId: 'user-42' }, headers: { 'user-agent': CHROME }, remoteAddress: '192.0.2.10' })
    t.equal(response.statusCode, 200)
  }
}

/** The plain digests a dictionary attack would try against a dump. */
function digests (value: string): string[] {
  const digest = createHash('sha256').update(value).digest()
  return [digest.toString('base64url'), digest.toString('hex'), digest.toString('base64')]
}

function assertNothingReadable (t: Test, keys: string[]): void {
  t.ok(keys.some((key) => key.startsWith('login:u:')), 'the lockout wrote its keys')
  t.ok(keys.some((key) => key.startsWith('anomaly:country:')), 'the anomaly rules wrote theirs')
  for (const value of [...USERNAMES, ...USER_IDS, ...IPS]) {
    for (const digest of digests(value)) {
      t.notOk(keys.find((key) => key.includes(digest)), `no key holds the plain SHA-256 of ${value}`)
    }
    t.notOk(keys.find((key) => key.split(':').includes(value)), `no key holds ${value} in clear`)
  }
  t.notOk(keys.find((key) => key.split(':').includes(COUNTRY)), 'no key holds the country in clear')
}

/** A memory store that notes every counter key it is asked about. */
function spiedMemoryStore (): { store: SessionStore, keys: Set<string> } {
  const store = memoryStore()
  const keys = new Set<string>()
  for (const method of ['increment', 'counter', 'resetCounter', 'decrement'] as const) {
    const original = store[method].bind(store) as (key: string, ...rest: unknown[]) => Promise<never>
    store[method] = async (key: string, ...rest: unknown[]) => {
      keys.add(key)
      return await original(key, ...rest)
    }
  }
  return { store, keys }
}

async function memoryKeys (t: Test, options: Partial<SessionGuardOptions>): Promise<string[]> {
  const { store, keys } = spiedMemoryStore()
  await exercise({ ...options, store }, t)
  return [...keys]
}

t.test('memory store: no counter key is a plain hash of a username, user id or address', async (t) => {
  assertNothingReadable(t, await memoryKeys(t, {}))
})

t.test('the key names are a stored format: the same secret names the same keys in every release', async (t) => {
  // Counters and known-device markers outlive a deploy: a change to how a name is made (a purpose, the
  // derivation) would reset every user's lockout and every known device on upgrade. Written down once.
  const keys = await memoryKeys(t, {})
  t.ok(keys.includes('login:u:iJNB4DTt0wm3j4hvAa4h5g'), 'the username alice')
  t.ok(keys.includes('login:ip:jCswxlyZhlNw7pVqMCkALA'), 'the address 192.0.2.10')
  t.ok(keys.includes('login:ip:Bp91mZyAWJ55bfkDyVGt5Q'), 'the network 2001:db8:1:2::/64')
})

t.test('the keys are keyed by the secret: another secret, other keys', async (t) => {
  const first = await memoryKeys(t, {})
  const second = await memoryKeys(t, { secret: `${SECRET}-rotated` })
  t.strictSame(first.filter((key) => second.includes(key)), [], 'not one key in common')
})

t.test('with an asymmetric key, the keys come from the private key itself, however its PEM is written', async (t) => {
  const pem = readFileSync(join(__dirname, 'security', 'fixtures', 'rsa-key.pem'), 'utf8')
  const key = createPrivateKey(pem)
  const keys = (privateKey: string): Partial<SessionGuardOptions> => ({
    secret: undefined,
    keys: { private: privateKey, public: createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string },
    algorithm: 'RS256'
  })
  const pkcs8 = await memoryKeys(t, keys(key.export({ type: 'pkcs8', format: 'pem' }) as string))
  assertNothingReadable(t, pkcs8)
  const pkcs1 = await memoryKeys(t, keys(key.export({ type: 'pkcs1', format: 'pem' }) as string))
  const crlf = await memoryKeys(t, keys(pem.replace(/\n/g, '\r\n')))
  t.strictSame(pkcs1.sort(), [...pkcs8].sort(), 'PKCS#1 or PKCS#8: one key, one set of store keys')
  t.strictSame(crlf.sort(), [...pkcs8].sort(), 'CRLF line ends: the same')
})

t.test('with ipMode \'none\' no key comes from the client\'s address, and the IP scope is off', async (t) => {
  const keys = await memoryKeys(t, { privacy: { ipMode: 'none' } })
  assertNothingReadable(t, keys)
  t.strictSame(keys.filter((key) => key.startsWith('login:ip:')), [], 'no IP-scope key')

  const h = await withLogin(t, { privacy: { ipMode: 'none' }, lockout: { ipFreeAttempts: 2 } })
  for (const username of ['a', 'b', 'c', 'd']) t.equal((await attempt(h, username, 'wrong', '192.0.2.10')).statusCode, 401, `${username}: only its username counts`)
})

redisTest(t, 'Redis store: a dump of the keyspace holds no plain hash of a username, user id or address', async (t) => {
  const admin = testClient()
  t.teardown(() => admin.disconnect())
  const dump = async (options: Partial<SessionGuardOptions>): Promise<string[]> => {
    const prefix = uniquePrefix()
    t.teardown(async () => await deleteKeys(admin, prefix))
    await t.test(`with ${JSON.stringify(options)}`, async (t) => {
      await exercise({ ...options, store: redisStore({ connection: REDIS_URL, prefix }) }, t)
    })
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await admin.scan(cursor, 'MATCH', `${prefix}c:*`, 'COUNT', 1000)
      cursor = next
      keys.push(...found.map((key) => key.slice(`${prefix}c:`.length)))
    } while (cursor !== '0')
    return keys
  }
  assertNothingReadable(t, await dump({}))
  const none = await dump({ privacy: { ipMode: 'none' } })
  assertNothingReadable(t, none)
  t.strictSame(none.filter((key) => key.startsWith('login:ip:')), [], 'with ipMode \'none\', no IP-scope key')
})

leftNoKeys(t)
