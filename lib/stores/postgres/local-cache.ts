import { LRUCache } from 'lru-cache'
import { Client, type ClientConfig } from 'pg'
import { expiresAt, isLive, type SessionRecord } from '../../session.js'
import { noop } from './database.js'

/** Longest wait between two attempts to listen again. */
const MAX_RELISTEN_DELAY_MS = 2000

export interface LocalCacheSettings {
  /** Most sessions cached. */
  max: number
  /** Longest time an entry is served without asking PostgreSQL. */
  ttlMs: number
  /** The notification channel. */
  channel: string
  /** How to open the listening connection (the pool's own settings). */
  connection: ClientConfig
  /** Bound on connecting and on `LISTEN`. */
  timeoutMs: number
  /** The plugin's clock, for the entries' TTL. */
  now: () => number
}

/**
 * Live sessions kept in this process in front of PostgreSQL, and their
 * invalidation: every statement that changes or removes a session sends
 * `pg_notify(channel, id)`, which drops that entry here.
 *
 * The cache answers only while its listening connection (one of its own,
 * outside the pool, as `LISTEN` needs) is listening. Any error or end of that
 * connection empties the cache and stops its use, then a new connection
 * listens again: notifications sent while it was away are lost, so nothing
 * cached before may be trusted. Every invalidation moves an epoch, and a read
 * that saw it move does not fill the cache: the read may predate the change.
 */
export class LocalCache {
  readonly #entries: LRUCache<string, SessionRecord>
  readonly #settings: LocalCacheSettings
  #listener: Client | undefined
  #relistenTimer: NodeJS.Timeout | undefined
  #attempts = 0
  #closed = false
  /** The cache may answer only while the listener is listening. */
  #live = false
  /** Bumped on every invalidation: a read that saw it change does not fill the cache. */
  #epoch = 0

  constructor (settings: LocalCacheSettings) {
    this.#settings = settings
    this.#entries = new LRUCache<string, SessionRecord>({ max: settings.max, perf: { now: settings.now }, ttlResolution: 0 })
  }

  /** The cached session, if the cache may answer and the session is live at `now`. */
  get (id: string, now: number): SessionRecord | undefined {
    const hit = this.#live ? this.#entries.get(id) : undefined
    return hit !== undefined && isLive(hit, now) ? hit : undefined
  }

  /** Taken before a read, for `fill()`: `undefined` while the cache may not answer. */
  mark (): number | undefined {
    return this.#live ? this.#epoch : undefined
  }

  /** Caches what a read found, unless something was invalidated since its `mark()`. */
  fill (mark: number | undefined, session: SessionRecord, now: number): void {
    if (mark !== undefined && this.#live && this.#epoch === mark) {
      this.#entries.set(session.id, session, { ttl: Math.min(this.#settings.ttlMs, expiresAt(session) - now) })
    }
  }

  /** Drops these sessions, changed or removed by this instance. */
  forget (ids: readonly string[]): void {
    if (ids.length === 0) return
    this.#epoch++
    for (const id of ids) this.#entries.delete(id)
  }

  /** Opens the listening connection; the cache answers once it listens. */
  listen (): void {
    const { connection, timeoutMs, channel } = this.#settings
    const listener = new Client({ ...connection, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs, keepAlive: true })
    this.#listener = listener
    let lost = false
    const lose = (): void => {
      if (lost) return
      lost = true
      this.#drop()
      listener.end().catch(noop)
      if (this.#listener === listener && !this.#closed) this.#listenLater()
    }
    listener.on('error', lose)
    listener.on('end', lose)
    listener.on('notification', (message) => this.forget([message.payload as string]))
    listener.connect()
      .then(async () => await listener.query(`LISTEN "${channel}"`))
      // A connection lost before LISTEN answered rejects it (below): reaching here, this one listens.
      .then(() => {
        this.#clear()
        this.#live = true
        this.#attempts = 0
      }, lose)
  }

  /** Stops listening and empties the cache for good. */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#relistenTimer)
    this.#drop()
    const listener = this.#listener
    this.#listener = undefined
    if (listener === undefined) return
    // Bounded: a connection to a server that stopped answering may never say goodbye.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      listener.end().catch(noop),
      new Promise((resolve) => { timer = setTimeout(resolve, this.#settings.timeoutMs) })
    ])
    clearTimeout(timer)
  }

  #listenLater (): void {
    const delay = Math.min(50 * 2 ** this.#attempts++, MAX_RELISTEN_DELAY_MS)
    this.#relistenTimer = setTimeout(() => this.listen(), delay).unref()
  }

  /** Empties the cache; reads in flight will not fill it. */
  #clear (): void {
    this.#epoch++
    this.#entries.clear()
  }

  /** Empties the cache and stops its use until the listener listens again. */
  #drop (): void {
    this.#live = false
    this.#clear()
  }
}
