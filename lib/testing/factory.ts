import type { Test } from 'tap'
import type { SessionStore } from '../stores/store.js'
import type { TestClock } from './clock.js'

/** What a store factory is asked for, besides the test and its clock. */
export interface StoreFactoryOptions {
  /**
   * A size bound for the whole store, given only by the model-based test and
   * only with `capacityEviction: true` (a store that evicts at a size bound,
   * like the memory store's `max`).
   */
  capacity?: number
}

/**
 * Builds a fresh, empty store for one test (its own key prefix, say) and
 * cleans up after it through `t.teardown`. The suites open it with `clock`
 * (moving that clock themselves) and close it when they are done with it.
 */
export type StoreFactory = (t: Test, clock: TestClock, options: StoreFactoryOptions) => SessionStore | Promise<SessionStore>
