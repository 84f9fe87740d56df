/**
 * `fastify-session-guard/testing`: the tests every store of this plugin
 * passes, the built-in ones included, for a store of your own.
 *
 *   import t from 'tap'
 *   import { testStore } from 'fastify-session-guard/testing'
 *
 *   testStore(t, (t, clock) => myStore())
 *
 * The suites run as subtests of the tap `Test` you pass, and the model-based
 * test uses fast-check: both are optional peer dependencies of the package,
 * needed only here. The main entry never loads this one.
 */
import type { Test } from 'tap'
import { conformance, type ConformanceOptions } from './conformance.js'
import type { StoreFactory } from './factory.js'
import { historyCases } from './history-cases.js'
import { runModel } from './model.js'

export { EPOCH, TestClock } from './clock.js'
export { conformance, type ConformanceOptions } from './conformance.js'
export type { StoreFactory, StoreFactoryOptions } from './factory.js'
export { runModel, type ModelOptions } from './model.js'
export { migration } from './migration-cases.js'
export { historyCases } from './history-cases.js'
export { limitCases } from './limit-cases.js'

export interface TestStoreOptions extends ConformanceOptions {
  /** Names the two tests: `<name> store keeps the store contract`, `… agrees with the reference model`. @default 'this' */
  name?: string
  /** Random sequences for the model-based test. @default FC_NUM_RUNS, else 300 */
  modelRuns?: number
  /** Shortest session lifetime the model generates: raise it for a store whose TTLs run in real time. @default 1 */
  minLifetimeMs?: number
  /**
   * Whether to run the login-history suite (`historyCases`): set `false` for a
   * store that keeps no history (it then lacks `appendHistory`, `history` and
   * `eraseHistory`, and the plugin keeps none with it).
   * @default true
   */
  history?: boolean
  /** Whether the store evicts at a size bound (`capacity`, passed to the factory); then the model tries small ones. */
  capacityEviction?: boolean
}

/**
 * Runs the conformance suite, then the model-based test, against stores from
 * `factory`, each as a subtest of `t`. A store that breaks the contract fails
 * them; the failures say which case, or which step of which random sequence.
 */
export async function testStore (t: Test, factory: StoreFactory, options: TestStoreOptions = {}): Promise<void> {
  const { name = 'this', modelRuns, minLifetimeMs, capacityEviction, history = true, ...conformanceOptions } = options
  await t.test(`${name} store keeps the store contract`, async (t) => {
    await conformance(t, factory, conformanceOptions)
  })
  if (history) {
    await t.test(`${name} store keeps a login history`, async (t) => {
      await historyCases(t, factory)
    })
  }
  await runModel(t, { name, factory, numRuns: modelRuns, minLifetimeMs, capacityEviction })
}
