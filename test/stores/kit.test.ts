import t, { Test } from 'tap'
import { memoryStore, type CreateResult, type MemoryStore, type SessionLimit, type SessionRecord, type SessionStore, type StoreContext } from '../../lib/index.js'
import { conformance, EPOCH, limitCases, runModel, TestClock, testStore, type StoreFactory, type TestStoreOptions } from '../../lib/testing/index.js'

/**
 * The store kit must be able to fail: a store with a defect, run through it
 * the way a third party runs theirs, is refused, and a sound one with the same
 * options is not. Each run goes on a tap Test of its own, outside this file's
 * tree, so its failures are read here instead of failing this file.
 */

// Two conformance runs and four model runs: longer than tap's default when the machine is busy.
t.setTimeout(180_000)

interface Outcome {
  ok: boolean
  /** Names of the test points and subtests that failed, at any depth. */
  failed: string[]
  /** Names of those that passed. */
  passed: string[]
  /** The whole TAP output. */
  output: string
}

async function isolated (suite: (t: Test) => Promise<void>): Promise<Outcome> {
  // Not filtered by this run's --grep or --only: every case of the kit runs.
  const opts: ConstructorParameters<typeof Test>[0] = { name: 'a store author\'s test file', grep: [], grepInvert: false, runOnly: false }
  const root = new Test(opts)
  let output = ''
  root.on('data', (chunk: string) => { output += chunk })
  const ended = new Promise<void>((resolve) => root.on('end', () => resolve()))
  const done = root.test('their store', suite)
  root.end()
  await done
  await ended
  const names = (ok: 'ok' | 'not ok'): string[] =>
    [...output.matchAll(new RegExp(`^ *${ok} \\d+ - (.+?)(?: # time=\\S+)?$`, 'gm'))].map((match) => match[1]!)
  return { ok: root.passing(), failed: names('not ok'), passed: names('ok'), output }
}

/**
 * A store as a third party might write one, with one defect: it keeps its
 * sessions in the memory store but never applies the per-user limit.
 */
class IgnoresTheLimit implements SessionStore {
  readonly #inner = memoryStore()
  open (context: StoreContext): void { this.#inner.open(context) }
  async create (session: SessionRecord, _limit: SessionLimit, now: number): Promise<CreateResult> {
    return await this.#inner.create(session, { max: Number.MAX_SAFE_INTEGER, onLimit: 'reject' }, now)
  }

  get: SessionStore['get'] = async (...args) => await this.#inner.get(...args)
  touch: SessionStore['touch'] = async (...args) => await this.#inner.touch(...args)
  rotate: SessionStore['rotate'] = async (...args) => await this.#inner.rotate(...args)
  replace: SessionStore['replace'] = async (...args) => await this.#inner.replace(...args)
  revoke: SessionStore['revoke'] = async (...args) => await this.#inner.revoke(...args)
  revokeUser: SessionStore['revokeUser'] = async (...args) => await this.#inner.revokeUser(...args)
  listUser: SessionStore['listUser'] = async (...args) => await this.#inner.listUser(...args)
  scan: SessionStore['scan'] = (...args) => this.#inner.scan(...args)
  increment: SessionStore['increment'] = async (...args) => await this.#inner.increment(...args)
  decrement: SessionStore['decrement'] = async (...args) => await this.#inner.decrement(...args)
  counter: SessionStore['counter'] = async (...args) => await this.#inner.counter(...args)
  resetCounter: SessionStore['resetCounter'] = async (...args) => await this.#inner.resetCounter(...args)
  stats: SessionStore['stats'] = async () => await this.#inner.stats()
  close: SessionStore['close'] = async () => await this.#inner.close()
}

const options: TestStoreOptions = { rotationRuns: 5, modelRuns: 30 }

t.test('the kit fails a store that ignores the per-user limit', async (t) => {
  const run = await isolated(async (t) => await testStore(t, () => new IgnoresTheLimit(), { ...options, history: false }))
  t.equal(run.ok, false, 'the run fails')
  for (const name of [
    'at the limit, evict-oldest removes the least recently active, not the oldest',
    'at the limit, reject refuses and changes nothing',
    '50 concurrent creates for one user end at exactly the limit',
    'this store keeps the store contract',
    'this store agrees with the reference model'
  ]) t.ok(run.failed.includes(name), `failed: ${name}`)
  for (const name of [
    'create then get returns the record as it was stored',
    'rotate decides exactly as decideRotation()',
    'scan returns every live session of every user once, in batches, skipping expired ones'
  ]) t.ok(run.passed.includes(name), `still passed, the defect is not elsewhere: ${name}`)
  t.match(run.output, /created past the limit in reject mode|evicted 0, expected [1-9]|above the limit/, 'the model names the broken rule')
})

/** A store written before per-type limits: it applies the total and ignores `limit.deviceType`. */
function ignoresTheDeviceType (): SessionStore {
  const inner = memoryStore()
  const store = Object.fromEntries(['open', 'get', 'touch', 'rotate', 'replace', 'revoke', 'revokeUser', 'listUser', 'scan', 'increment', 'decrement', 'counter', 'resetCounter', 'stats', 'close']
    .map((name) => [name, (inner[name as keyof MemoryStore] as (...args: unknown[]) => unknown).bind(inner)])) as unknown as SessionStore
  store.create = async (session, limit, now) => await inner.create(session, { max: limit.max, onLimit: limit.onLimit }, now)
  return store
}

t.test('the kit fails a store that ignores the limit of a device type', async (t) => {
  const run = await isolated(async (t) => await conformance(t, () => ignoresTheDeviceType(), { rotationRuns: 1 }))
  t.equal(run.ok, false, 'the run fails')
  for (const name of [
    'a device type at its limit evicts its own least recently active, never one of another type',
    'a device type at its limit with reject refuses, changes nothing, and reports only the sessions of that type',
    '50 concurrent logins of one type end at that type\'s limit',
    'per-device-type limits'
  ]) t.ok(run.failed.includes(name), `failed: ${name}`)
  for (const name of [
    'at the limit, evict-oldest removes the least recently active, not the oldest',
    '50 concurrent creates for one user end at exactly the limit',
    'the total still applies under a type limit: it evicts of any type, or refuses with every session'
  ]) t.ok(run.passed.includes(name), `still passed, the total is kept: ${name}`)

  // The cases on their own, as the author of a store adds them to a suite of theirs.
  const alone = await isolated(async (t) => await limitCases(t, () => ignoresTheDeviceType()))
  t.equal(alone.ok, false, 'limitCases alone fails it too')
  t.ok(alone.failed.includes('50 concurrent logins of one type end at that type\'s limit'))
  t.ok(alone.passed.includes('the total still applies under a type limit: it evicts of any type, or refuses with every session'))
})

t.test('the kit passes a sound store run with the same options', async (t) => {
  const clocks: Array<{ clock: TestClock, startedAt: number }> = []
  const factory: StoreFactory = (t, clock, { capacity }) => {
    clocks.push({ clock, startedAt: clock.now })
    return memoryStore(capacity === undefined ? {} : { max: capacity })
  }
  const run = await isolated(async (t) => await testStore(t, factory, { ...options, name: 'memory', capacityEviction: true }))
  t.strictSame(run.failed, [], 'nothing failed')
  t.equal(run.ok, true, 'the run passes')
  t.ok(run.passed.includes('memory store keeps the store contract'), 'the conformance suite ran')
  t.ok(run.passed.includes('memory store agrees with the reference model'), 'the model ran')
  t.ok(clocks.length > 0 && clocks.every(({ clock, startedAt }) => clock instanceof TestClock && startedAt === EPOCH), 'each store came with a TestClock at EPOCH')
})

t.test('FC_SEED replays the model\'s counterexample', async (t) => {
  const before = process.env.FC_SEED
  process.env.FC_SEED = '20260101'
  t.teardown(() => {
    if (before === undefined) delete process.env.FC_SEED
    else process.env.FC_SEED = before
  })
  const counterexample = async (): Promise<string | undefined> => {
    const run = await isolated(async (t) => await runModel(t, { name: 'broken', factory: () => new IgnoresTheLimit(), numRuns: 30 }))
    t.equal(run.ok, false, 'the run fails')
    t.match(run.output, /seed: 20260101/, 'the seed in the report')
    return /Counterexample: (.+)/.exec(run.output)?.[1]
  }
  const first = await counterexample()
  t.ok(first, 'a counterexample is reported')
  t.equal(await counterexample(), first, 'the same one, run again with the same seed')
})
