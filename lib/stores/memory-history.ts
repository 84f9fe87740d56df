import { LRUCache } from 'lru-cache'
import type { HistoryEntry, HistoryQuery, HistoryRecord, HistoryRetention } from './store.js'

/**
 * The memory store's login histories: one ring of entries per user, oldest
 * first, in an LRU bounded by the entries of every user together
 * (`maxEntries`): the users heard from least recently lose theirs first.
 * Each user's ring keeps the retention's count and drops entries past its age.
 */
export class MemoryHistory {
  readonly #byUser: LRUCache<string, HistoryEntry[]>
  /** Cursors: one sequence for the store, so an id is unique and orders entries. */
  #sequence = 0

  constructor (maxEntries: number) {
    this.#byUser = new LRUCache({ maxSize: maxEntries, sizeCalculation: (entries) => Math.max(1, entries.length) })
  }

  append (userId: string, record: HistoryRecord, { maxEntries, maxAgeMs }: HistoryRetention, now: number): void {
    const held = this.#byUser.get(userId) ?? []
    // Object.assign, not a spread: a frozen spread copy gets a hidden class of its own (see sessionRecord).
    const entry: HistoryEntry = Object.freeze(Object.assign({}, record, { id: String(++this.#sequence) }))
    // Every append builds a new array: one handed out by `read` never changes.
    const kept = [...held.filter((e) => isKept(e, maxAgeMs, now)), entry]
    this.#byUser.set(userId, kept.length > maxEntries ? kept.slice(kept.length - maxEntries) : kept)
  }

  read (userId: string, { limit, before }: HistoryQuery, { maxAgeMs }: HistoryRetention, now: number): HistoryEntry[] {
    const held = this.#byUser.get(userId, { updateAgeOnGet: false }) ?? []
    const bound = before === undefined ? Infinity : Number(before)
    const page: HistoryEntry[] = []
    for (let i = held.length - 1; i >= 0 && page.length < limit; i--) {
      const entry = held[i] as HistoryEntry
      if (Number(entry.id) < bound && isKept(entry, maxAgeMs, now)) page.push(entry)
    }
    return page
  }

  erase (userId: string): void {
    this.#byUser.delete(userId)
  }
}

/** An entry is kept until `maxAgeMs` have passed since its time. */
function isKept (entry: HistoryRecord, maxAgeMs: number, now: number): boolean {
  return now - entry.time < maxAgeMs
}
