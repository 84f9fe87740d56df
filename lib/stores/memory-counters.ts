import { LRUCache } from 'lru-cache'
import { CLOCK_SKEW_ALLOWANCE_MS } from '../session.js'
import type { HeldCounter, StoreLog } from './store.js'

/** A counter as held: its key is the cache's. */
export type StoredCounter = Omit<HeldCounter, 'key'>

/** At most one warning of live counters dropped per this many ms. */
const WARN_INTERVAL_MS = 60_000

/** Where a counter's window ends, as written; outdated once the counter slid, was reset or went. */
interface Deadline {
  readonly key: string
  readonly expiresAt: number
}

/**
 * The memory store's counters (failed logins, anomaly memory, DPoP proofs'
 * `jti`s …), at most `max` of them. When full, an expired counter makes room
 * first, the one whose window ended earliest; only when every counter is live
 * does the least recently used go, and that is counted (`evictions`) and
 * warned of: a lockout forgotten early, or a DPoP proof that could be
 * replayed, must never pass unseen.
 */
export class MemoryCounters {
  readonly #max: number
  readonly #log: () => StoreLog | undefined
  readonly #held: LRUCache<string, StoredCounter>
  /**
   * A min-heap of the deadlines written, earliest first. Lazy: an entry is
   * checked against `#held` when it reaches the top, and rebuilt from `#held`
   * once it holds twice `max`, so every write costs O(log max).
   */
  #deadlines: Deadline[] = []
  #evictions = 0
  #warnedAt = -Infinity

  constructor (max: number, log: () => StoreLog | undefined) {
    this.#max = max
    this.#log = log
    this.#held = new LRUCache<string, StoredCounter>({
      max,
      dispose: (_counter, _key, reason) => { if (reason === 'evict') this.#evictions++ }
    })
  }

  /** Live counters dropped to stay within `max`, since the store was created. */
  get evictions (): number {
    return this.#evictions
  }

  /** Deadlines in the heap, outdated ones included: at most twice `max`. */
  get trackedDeadlines (): number {
    return this.#deadlines.length
  }

  /**
   * The counter, if live at `now`; marks it used. One past its window is
   * removed only past `CLOCK_SKEW_ALLOWANCE_MS`, as a session: a caller whose
   * clock runs ahead must not end it for the others.
   */
  live (key: string, now: number): StoredCounter | undefined {
    const counter = this.#held.get(key)
    if (counter === undefined || now < counter.expiresAt) return counter
    if (now >= counter.expiresAt + CLOCK_SKEW_ALLOWANCE_MS) this.#held.delete(key)
    return undefined
  }

  /** The counter as held, expired or not, without marking it used. */
  peek (key: string): StoredCounter | undefined {
    return this.#held.peek(key)
  }

  set (key: string, counter: StoredCounter, now: number): void {
    const before = this.#held.peek(key)
    if (before === undefined && this.#held.size >= this.#max) this.#dropExpired(now)
    const evictions = this.#evictions
    this.#held.set(key, counter)
    if (this.#evictions > evictions) this.#warn(now)
    if (before?.expiresAt !== counter.expiresAt) this.#track({ key, expiresAt: counter.expiresAt })
  }

  delete (key: string): void {
    this.#held.delete(key)
  }

  keys (): string[] {
    return [...this.#held.keys()]
  }

  /** Every counter held, least recently used first. */
  rentries (): Iterable<[string, StoredCounter]> {
    return this.#held.rentries() as Iterable<[string, StoredCounter]>
  }

  /** Removes the counter whose window ended earliest, if one has ended at `now`. */
  #dropExpired (now: number): void {
    // Called when full: every counter held has its deadline in the heap, so one is found.
    for (;;) {
      const top = this.#deadlines[0] as Deadline
      if (this.#held.peek(top.key)?.expiresAt === top.expiresAt) {
        // The earliest deadline of every counter held: if it has not passed, none has.
        if (now < top.expiresAt) return
        this.#held.delete(top.key)
        this.#pop()
        return
      }
      this.#pop()
    }
  }

  #warn (now: number): void {
    if (now - this.#warnedAt < WARN_INTERVAL_MS) return
    this.#warnedAt = now
    this.#log()?.warn(
      { maxCounters: this.#max, counterEvictions: this.#evictions },
      'session guard: the memory store dropped a live counter (a lockout, a DPoP proof\'s jti …) to stay within maxCounters: ' +
      'set memoryStore.maxCounters to at least peak DPoP requests/s × 2 × dpop.window + the login counters, ' +
      'or use the Redis store (docs/stores.md)'
    )
  }

  #track (deadline: Deadline): void {
    if (this.#deadlines.length >= 2 * this.#max) {
      // From the counters held, this one included. A sorted array is a heap: at
      // most `max` entries, after at least `max` writes since the last rebuild.
      this.#deadlines = [...this.#held.entries()]
        .map(([key, { expiresAt }]) => ({ key, expiresAt }))
        .sort((a, b) => a.expiresAt - b.expiresAt)
      return
    }
    const heap = this.#deadlines
    let i = heap.push(deadline) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((heap[parent] as Deadline).expiresAt <= deadline.expiresAt) break
      heap[i] = heap[parent] as Deadline
      i = parent
    }
    heap[i] = deadline
  }

  #pop (): void {
    const heap = this.#deadlines
    const last = heap.pop() as Deadline
    if (heap.length === 0) return
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= heap.length) break
      if (child + 1 < heap.length && (heap[child + 1] as Deadline).expiresAt < (heap[child] as Deadline).expiresAt) child++
      if ((heap[child] as Deadline).expiresAt >= last.expiresAt) break
      heap[i] = heap[child] as Deadline
      i = child
    }
    heap[i] = last
  }
}
