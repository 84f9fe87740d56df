import t from 'tap'
import { expectAssignable, expectError, expectType } from 'tsd'
import { memoryStore, type SessionStore } from 'fastify-session-guard'
import {
  conformance,
  EPOCH,
  migration,
  runModel,
  TestClock,
  testStore,
  type StoreFactory,
  type TestStoreOptions
} from 'fastify-session-guard/testing'

// The main function takes a tap Test and a factory, sync or async, and options.
expectType<Promise<void>>(testStore(t, () => memoryStore()))
expectType<Promise<void>>(testStore(t, async (t, clock, { capacity }) => {
  t.teardown(() => {})
  expectType<TestClock>(clock)
  expectType<number | undefined>(capacity)
  return memoryStore(capacity === undefined ? {} : { max: capacity })
}, { name: 'memory', capacityEviction: true, modelRuns: 50, rotationRuns: 10, minLifetimeMs: 1 }))
expectError(testStore(t, () => ({ get: async () => undefined })))
expectError(testStore(t, () => memoryStore(), { modelRuns: '50' }))
expectError(testStore(() => memoryStore()))

const factory: StoreFactory = (t, clock) => {
  expectType<number>(clock.now)
  clock.advance(1000)
  expectType<() => number>(clock.read)
  return memoryStore()
}
expectAssignable<(...args: Parameters<StoreFactory>) => SessionStore | Promise<SessionStore>>(factory)
expectType<Promise<void>>(conformance(t, factory, { rotationRuns: 5 }))
expectType<Promise<void>>(runModel(t, { name: 'mine', factory, numRuns: 20 }))
expectAssignable<TestStoreOptions>({ rotationRuns: 5 })
expectType<number>(EPOCH)

// The migration cases, for a store with the optional methods.
expectType<Promise<void>>(migration(t, () => memoryStore()))
