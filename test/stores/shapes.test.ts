import { setFlagsFromString } from 'node:v8'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard from '../../lib/index.js'
import { sessionRecord, withActivity, type SessionRecord } from '../../lib/session.js'
import { checkClaims } from '../../lib/tokens/access-tokens.js'
import { memoryStore } from '../../lib/stores/memory.js'
import { EPOCH, MINUTE, SECRET } from '../helper.js'

/**
 * What a session held in memory costs depends on V8 sharing one hidden class
 * among records of the same fields. An object literal that starts with a
 * spread, or a frozen spread copy, gets a class of its own once V8 optimises
 * the spread: about 500 bytes more for each record held (`npm run bench:memory`).
 * Enough records are made here for that optimisation to happen.
 */
setFlagsFromString('--allow-natives-syntax')
// eslint-disable-next-line no-new-func -- V8's own check, available once the flag above is set.
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: unknown, b: unknown) => boolean

const MANY = 5000

/** Of consecutive pairs among the last `count` of `objects`, how many share a hidden class. */
function sharing (objects: readonly unknown[], count = 100): number {
  let same = 0
  for (let i = objects.length - count; i < objects.length; i++) {
    if (haveSameMap(objects[i - 1], objects[i])) same++
  }
  return same
}

function record (n: number): SessionRecord {
  const described = { device: { type: 'desktop', name: 'Firefox on Linux', browser: { name: 'Firefox' }, os: { name: 'Linux' } }, ip: `192.0.2.${n % 256}` } as unknown as Partial<SessionRecord>
  return {
    ...described,
    id: `session-${n}`,
    userId: `user-${n}`,
    fingerprintHash: 'fp',
    createdAt: EPOCH,
    lastSeenAt: EPOCH,
    idleExpiresAt: EPOCH + 30 * MINUTE,
    absoluteExpiresAt: EPOCH + 120 * MINUTE,
    remembered: false,
    claims: { role: 'member' },
    refresh: { hash: 'h', rotatedAt: EPOCH, rotations: 0 }
  }
}

t.test('the check tells a shared hidden class from different ones', async (t) => {
  const made = Array.from({ length: MANY }, (_, n) => record(n))
  t.equal(sharing(made.map((r) => ({ id: r.id, userId: r.userId }))), 100, 'literals of the same fields share one')
  t.equal(sharing(made.map((r, n) => n % 2 === 0 ? { id: r.id } : { userId: r.userId })), 0, 'literals of other fields do not')
})

t.test('sessionRecord() and withActivity() make records that share one hidden class', async (t) => {
  const made = Array.from({ length: MANY }, (_, n) => sessionRecord(record(n)))
  t.equal(sharing(made), 100)
  const activity = { lastSeenAt: EPOCH + MINUTE, idleExpiresAt: EPOCH + 31 * MINUTE, changes: { ip: '198.51.100.7' } }
  t.equal(sharing(made.map((session) => withActivity(session, activity))), 100)
  t.same(withActivity(made[0] as SessionRecord, { ...activity, changes: { ip: undefined } }).ip, undefined, 'a change to undefined removes the field')
  t.notOk('ip' in withActivity(made[0] as SessionRecord, { ...activity, changes: { ip: undefined } }))
})

t.test('the records, claims and history entries the memory store keeps share their hidden classes, and the entries of one device its summary', async (t) => {
  const store = memoryStore({ max: MANY })
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(sessionGuard, { secret: SECRET, store })
  app.post<{ Body: { user: string } }>('/login', async (request, reply) => {
    const { session } = await reply.issueSession({ userId: request.body.user, claims: { role: 'member' } })
    return { id: session.id }
  })
  await app.ready()
  const ids: string[] = []
  for (let n = 0; n < MANY; n++) {
    const response = await app.inject({ method: 'POST', url: '/login', body: { user: `user-${n}` }, headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0' } })
    ids.push(response.json<{ id: string }>().id)
  }
  const held = await Promise.all(ids.slice(-101).map(async (id) => await store.get(id, Date.now()) as SessionRecord))
  t.equal(sharing(held), 100, 'records')
  t.equal(sharing(held.map((session) => session.claims)), 100, 'claims')
  const entries = await Promise.all(held.map(async (session) => (await app.sessions.history(session.userId))[0]))
  t.equal(sharing(entries), 100, 'history entries')
  t.equal(entries[0]?.device, entries[100]?.device, 'the entries of one device share its summary')
  t.same(entries[0]?.device, { type: 'desktop', name: 'Firefox on Linux' })
})

t.test('claims are copied by Object.assign, except claims holding a "__proto__" of their own, which it would set as the prototype', async (t) => {
  const parsed = JSON.parse('{ "__proto__": { "admin": true }, "role": "member" }') as Record<string, unknown>
  const copy = checkClaims(parsed)
  t.equal(Object.getPrototypeOf(copy), Object.prototype)
  t.equal((copy as { admin?: unknown }).admin, undefined, 'nothing inherited from the claim')
  t.same(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value, { admin: true }, 'kept as a claim of its own')
  t.ok(Object.isFrozen(copy))
})
