import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import sessionGuard, { memoryStore, parseDevice, type MemoryStore, type SessionRecord, type SnapshotOptions, type StoreContext } from '../../lib/index.js'
import { decodeSnapshot, SNAPSHOT_MAGIC } from '../../lib/stores/memory-snapshot.js'
import { build, MINUTE, SECRET, TestClock } from '../helper.js'
import { waitFor } from './redis-helper.js'

const HOUR = 60 * MINUTE
const ROOMY = { max: 100, onLimit: 'reject' } as const
const EVICT = { max: 3, onLimit: 'evict-oldest' } as const

interface Logged { level: 'warn' | 'error' | 'info', details: Record<string, unknown>, message: string }

/** Opens `store` on `clock`, with a log the test reads. */
async function opened (t: Test, store: MemoryStore, clock: TestClock): Promise<{ store: MemoryStore, logged: Logged[], removed: string[] }> {
  const logged: Logged[] = []
  const removed: string[] = []
  const context: StoreContext = {
    now: clock.read,
    onRemoved: (session) => removed.push(session.id),
    log: {
      warn: (details, message) => logged.push({ level: 'warn', details: details as Record<string, unknown>, message }),
      error: (details, message) => logged.push({ level: 'error', details: details as Record<string, unknown>, message }),
      info: (details, message) => logged.push({ level: 'info', details: details as Record<string, unknown>, message })
    }
  }
  await store.open(context)
  t.teardown(() => store.close())
  return { store, logged, removed }
}

function record (clock: TestClock, id: string, userId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    userId,
    fingerprintHash: `fp-${id}`,
    createdAt: clock.now,
    lastSeenAt: clock.now,
    idleExpiresAt: clock.now + 30 * MINUTE,
    absoluteExpiresAt: clock.now + 12 * HOUR,
    remembered: false,
    refresh: { hash: `r0-${id}`, rotatedAt: clock.now, rotations: 0 },
    ...overrides
  }
}

/**
 * A snapshot path in a directory of the test's own. tap removes `t.testdir()`
 * before it runs any teardown, so a store closed by its teardown (whose timer
 * may still be writing) raced the removal (ENOTEMPTY). Teardowns run last
 * registered first: this one, registered before the store is opened, removes
 * the directory after the store's `close()` has written its last snapshot.
 */
function snapshotAt (t: Test, options: Partial<SnapshotOptions> = {}): SnapshotOptions {
  const directory = mkdtempSync(join(tmpdir(), 'session-guard-snapshot-'))
  t.teardown(async () => await rm(directory, { recursive: true, force: true }))
  return { path: join(directory, 'sessions.snapshot'), ...options }
}

/** A file with a valid header over `body`: only what is inside is wrong. */
function withHeader (body: string, version = 1): Buffer {
  const bytes = Buffer.from(body)
  return Buffer.concat([Buffer.from(`${SNAPSHOT_MAGIC} v${version} sha256=${createHash('sha256').update(bytes).digest('hex')}\n`), bytes])
}

t.test('a restart restores sessions, refresh state, the per-user index and counters, and drops what ended meanwhile', async (t) => {
  const clock = new TestClock()
  const snapshot = snapshotAt(t)
  const { store: before } = await opened(t, memoryStore({ snapshot }), clock)
  const device = parseDevice({ 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0' })
  const alice = [0, 1, 2].map((j) => record(clock, `a${j}`, 'alice', { lastSeenAt: clock.now + j, ...(j > 0 ? { device, ip: '203.0.113.7' } : {}) }))
  for (const session of alice) await before.create(session, ROOMY, clock.now)
  const short = record(clock, 'short', 'bob', { idleExpiresAt: clock.now + 2 * MINUTE })
  await before.create(short, ROOMY, clock.now)
  const rotation = { presentedHash: 'r0-a0', successorHash: 'r1-a0', graceMs: 0, activity: { lastSeenAt: clock.now + 5, idleExpiresAt: clock.now + 30 * MINUTE } }
  const rotated = await before.rotate('a0', rotation, clock.now)
  t.equal(rotated.outcome, 'rotated')
  for (let j = 0; j < 4; j++) await before.increment('login:alice', 15 * MINUTE, clock.now)
  await before.increment('burst', MINUTE, clock.now)
  await before.close()

  const file = await readFile(snapshot.path)
  t.equal(file.subarray(0, SNAPSHOT_MAGIC.length + 3).toString(), `${SNAPSHOT_MAGIC} v1`, 'a header: magic and version')
  t.equal((await stat(snapshot.path)).mode & 0o777, 0o600, 'readable by its owner only')
  t.strictSame(await readdir(join(snapshot.path, '..')), ['sessions.snapshot'], 'no temporary file left beside it')

  clock.advance(3 * MINUTE)
  const { store: after, removed } = await opened(t, memoryStore({ snapshot }), clock)
  for (const session of alice.slice(1)) t.strictSame(await after.get(session.id, clock.now), session, `${session.id} as it was`)
  t.strictSame(await after.get('a0', clock.now), rotated.outcome === 'rotated' ? rotated.session : undefined, 'with its rotation')
  const [one, two] = [await after.get('a1', clock.now), await after.get('a2', clock.now)]
  t.ok(one?.device !== undefined && one.device === two?.device, 'sessions of one device share one device object again')
  t.ok(Object.isFrozen(one?.device) && Object.isFrozen(one?.device?.browser) && Object.isFrozen(one?.device?.os), 'frozen, as parseDevice gives it')
  t.ok(one?.device !== undefined && 'model' in one.device, 'every field present, the undefined model included')
  t.equal(await after.get('short', clock.now), undefined, 'a session that ended while the app was down is dropped')
  t.strictSame(removed, [], 'and never reported as removed: it was never loaded')
  t.match(await after.counter('login:alice', clock.now), { count: 4, firstAt: clock.now - 3 * MINUTE }, 'a counter, in its window')
  t.equal(await after.counter('burst', clock.now), undefined, 'a counter whose window ended is dropped')
  t.match(await after.stats(), { sessions: 3, users: 1, sessionsPerUser: { 3: 1 } })

  const reuse = await after.rotate('a0', { ...rotation, presentedHash: 'an-older-token' }, clock.now)
  t.equal(reuse.outcome, 'reuse', 'theft detection holds across the restart')
  await after.create(record(clock, 'a3', 'alice'), EVICT, clock.now)
  const fourth = record(clock, 'a4', 'alice', { lastSeenAt: clock.now + 1 })
  const created = await after.create(fourth, EVICT, clock.now)
  t.strictSame(created.created && created.evicted.map((session) => session.id), ['a1'], 'the limit counts restored sessions, least recently active first out')
})

t.test('the least recently used order survives a restart', async (t) => {
  const clock = new TestClock()
  const snapshot = snapshotAt(t)
  const { store: before } = await opened(t, memoryStore({ max: 3, snapshot }), clock)
  for (const id of ['x', 'y', 'z']) await before.create(record(clock, id, id), ROOMY, clock.now)
  await before.get('x', clock.now)
  await before.close()
  const { store: after, removed } = await opened(t, memoryStore({ max: 3, snapshot }), clock)
  await after.create(record(clock, 'w', 'w'), ROOMY, clock.now)
  t.strictSame(removed, ['y'], 'y was the least recently used before the restart, and is evicted first after it')
})

t.test('a snapshot is written every interval, and a first start has none to restore', async (t) => {
  const clock = new TestClock()
  const snapshot = snapshotAt(t, { intervalMs: 20 })
  const { store } = await opened(t, memoryStore({ snapshot }), clock)
  t.equal((await store.stats()).sessions, 0, 'no file yet: an empty store')
  await store.create(record(clock, 's1', 'alice'), ROOMY, clock.now)
  // Real time: the interval timer, not a call of ours, writes it.
  await waitFor(async () => await readFile(snapshot.path).then((data) => decodeSnapshot(data, snapshot.path).sessions.length === 1, () => false), 5000, 'a snapshot by the timer')
  t.pass('written by the timer')
})

t.test('saveSnapshot writes now, one write at a time; without the option it does nothing', async (t) => {
  const clock = new TestClock()
  const snapshot = snapshotAt(t)
  await writeFile(`${snapshot.path}.tmp`, 'left by a crash in the middle of a write')
  const { store } = await opened(t, memoryStore({ snapshot }), clock)
  await store.create(record(clock, 's1', 'alice'), ROOMY, clock.now)
  clock.advance(MINUTE)
  await Promise.all([store.saveSnapshot(), store.saveSnapshot()])
  const content = decodeSnapshot(await readFile(snapshot.path), snapshot.path)
  t.equal(content.writtenAt, clock.now, 'taken at the store clock')
  t.strictSame(content.sessions.map((session) => session.id), ['s1'])
  t.strictSame(await readdir(join(snapshot.path, '..')), ['sessions.snapshot'], 'the stale temporary file was written over and renamed')

  const plain = memoryStore()
  await plain.saveSnapshot()
  await plain.close()
  t.pass('no snapshot option: nothing to write')
})

t.test('a snapshot that cannot be written is logged, and the store goes on', async (t) => {
  const clock = new TestClock()
  const snapshot = { path: join(t.testdir(), 'missing-directory', 'sessions.snapshot') }
  const { store, logged } = await opened(t, memoryStore({ snapshot }), clock)
  await store.create(record(clock, 's1', 'alice'), ROOMY, clock.now)
  await store.saveSnapshot()
  t.match(logged, [{ level: 'error', details: { path: snapshot.path, err: { code: 'ENOENT' } }, message: /could not be written/ }])
  t.ok(await store.get('s1', clock.now), 'sessions unharmed')
  await store.close()
  t.equal(logged.length, 2, 'close() logs its failed write too, and does not throw')
  const unopened = memoryStore({ snapshot })
  await unopened.close()
  t.equal(logged.length, 2, 'a store never opened writes nothing on close')
})

t.test('a foreign, damaged, truncated or unreadable file is refused with a coded error, and the file is left alone', async (t) => {
  const valid = withHeader(JSON.stringify({ writtenAt: 1, sessions: [], counters: [] }))
  const cases: Array<[string, Buffer | 'directory', RegExp]> = [
    ['a foreign file', Buffer.from('{"sessions":[]}\n'), /it is not a session snapshot/],
    ['an empty file', Buffer.alloc(0), /it is not a session snapshot/],
    ['a damaged header', Buffer.from(`${SNAPSHOT_MAGIC} v1 sha256=nothex\n{}`), /its header is damaged/],
    ['another format version', withHeader('{}', 2), /format version 2, this release reads version 1/],
    ['a truncated file', valid.subarray(0, valid.length - 3), /checksum does not match/],
    ['a flipped byte', Buffer.concat([valid.subarray(0, -2), Buffer.from('X}')]), /checksum does not match/],
    ['a body that is not JSON', withHeader('{"writtenAt":'), /its body is not JSON/],
    ['JSON of another shape', withHeader(JSON.stringify({ writtenAt: 1, sessions: [{ id: 1 }], counters: [] })), /its content is not what a snapshot holds/],
    ['a session with a bad refresh state', withHeader(JSON.stringify({ writtenAt: 1, sessions: [{ ...record(new TestClock(), 'x', 'u'), refresh: { hash: 1 } }], counters: [] })), /its content/],
    ['a bad counter', withHeader(JSON.stringify({ writtenAt: 1, sessions: [], counters: [{ key: 'k', count: '1' }] })), /its content/],
    ['a body of null', withHeader('null'), /its content/],
    ['a directory', 'directory', /it cannot be read \(EISDIR\)/]
  ]
  for (const [name, contents, reason] of cases) {
    await t.test(name, async (t) => {
      const snapshot = snapshotAt(t)
      if (contents === 'directory') await mkdir(snapshot.path)
      else await writeFile(snapshot.path, contents)
      const store = memoryStore({ snapshot })
      t.teardown(() => store.close())
      await t.rejects(store.open({ now: Date.now, onRemoved: () => {} }), {
        code: 'FST_SESSION_GUARD_SNAPSHOT_INVALID',
        message: reason
      })
      await store.close()
      if (contents !== 'directory') t.strictSame(await readFile(snapshot.path), contents, 'the file is as it was, even after close()')
    })
  }
})

t.test('app.ready() rejects on a refused snapshot: the app never starts empty by surprise', async (t) => {
  const snapshot = snapshotAt(t)
  await writeFile(snapshot.path, 'not a snapshot')
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(sessionGuard, { secret: SECRET, store: memoryStore({ snapshot }) })
    await app.ready()
  }, { code: 'FST_SESSION_GUARD_SNAPSHOT_INVALID', message: /sessions\.snapshot" refused: it is not a session snapshot/ })
})

t.test("onInvalid: 'start-empty' logs the refusal, moves the file aside and starts empty", async (t) => {
  const clock = new TestClock()
  const snapshot = snapshotAt(t, { onInvalid: 'start-empty' })
  await writeFile(snapshot.path, 'not a snapshot')
  const { store, logged } = await opened(t, memoryStore({ snapshot }), clock)
  const aside = `${snapshot.path}.invalid-${clock.now}`
  t.match(logged, [{ level: 'warn', details: { path: snapshot.path, movedTo: aside, err: { code: 'FST_SESSION_GUARD_SNAPSHOT_INVALID' } }, message: /starting empty/ }])
  t.equal(await readFile(aside, 'utf8'), 'not a snapshot', 'kept for a look')
  t.equal((await store.stats()).sessions, 0)
  await store.create(record(clock, 's1', 'alice'), ROOMY, clock.now)
  await store.close()
  t.strictSame(decodeSnapshot(await readFile(snapshot.path), snapshot.path).sessions.map((session) => session.id), ['s1'], 'the next snapshot is a good one')
})

t.test('the snapshot holds what the store holds: hashes, never a token or the fingerprint', async (t) => {
  const snapshot = snapshotAt(t)
  const store = memoryStore({ snapshot })
  const { app, login } = await build(t, { store })
  const credentials = await login('alice')
  await app.close()
  const text = await readFile(snapshot.path, 'utf8')
  t.ok(text.includes(credentials.sessionId), 'the session is in it')
  t.notOk(text.includes(credentials.refreshToken), 'not the refresh token')
  t.notOk(text.includes(credentials.accessToken), 'not the access token')
  t.notOk(text.includes(credentials.fingerprint.split('=')[1] as string), 'not the fingerprint')
  t.notOk(text.includes(SECRET), 'not the signing secret')
})

t.test('importing over an expired copy of a session reports the expired one and writes the new', async (t) => {
  const clock = new TestClock()
  const { store, removed } = await opened(t, memoryStore(), clock)
  const old = record(clock, 's1', 'alice', { idleExpiresAt: clock.now + MINUTE })
  await store.create(old, ROOMY, clock.now)
  clock.advance(MINUTE)
  const fresh = record(clock, 's1', 'alice')
  t.strictSame(await store.importSessions([fresh], clock.now), { imported: 1, skipped: 0 })
  t.strictSame(removed, ['s1'], 'the expired copy, reported as removed')
  t.strictSame(await store.get('s1', clock.now), fresh)
  t.match(await store.stats(), { sessions: 1, users: 1 })
})

t.test('snapshot options are checked, unknown names refused', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    ['file.snapshot', /"memoryStore\.snapshot": must be an object/],
    [{ path: '' }, /"memoryStore\.snapshot\.path": must be a file path/],
    [{ path: 'x', intervalMs: 0 }, /"memoryStore\.snapshot\.intervalMs": must be a positive number/],
    [{ path: 'x', onInvalid: 'ignore' }, /"memoryStore\.snapshot\.onInvalid"/],
    [{ path: 'x', interval: 1000 }, /"memoryStore\.snapshot\.interval": is not an option/]
  ]
  for (const [snapshot, message] of bad) {
    t.throws(() => memoryStore({ snapshot: snapshot as SnapshotOptions }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message })
  }
})
