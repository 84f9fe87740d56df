import { LRUCache } from 'lru-cache'
import { expiresAt, isLive, type SessionRecord } from '../../session.js'
import { nodesOf, type RedisClient, type RedisSubscriber, type RedisSubscriberOptions } from './client.js'
import { MAX_RECONNECT_DELAY_MS, noop } from './connection.js'

const SUBSCRIBER_NAME = 'session-guard-invalidations'

export interface LocalCacheSettings {
  /** Most sessions cached. */
  max: number
  /** Longest time an entry is served without asking Redis. */
  ttlMs: number
  /** The invalidation channel. */
  channel: string
  /** The store's prefix, to name the subscriber's connection. */
  prefix: string
  /** The plugin's clock, for the entries' TTL. */
  now: () => number
}

/**
 * Live sessions kept in this process in front of Redis, and their
 * invalidation: every change that matters is published on the channel by the
 * script that makes it, and drops the entries it names here.
 *
 * The cache answers only while its subscriber is subscribed. Any disconnect
 * empties it and stops its use, then a new connection subscribes again:
 * messages sent while it was away are lost, so nothing cached before may be
 * trusted. Every invalidation moves an epoch, and a read from Redis that saw
 * it move does not fill the cache: the read may predate the change.
 */
export class LocalCache {
  readonly #entries: LRUCache<string, SessionRecord>
  readonly #ttlMs: number
  readonly #channel: string
  readonly #prefix: string
  #subscriber: RedisSubscriber | undefined
  #resubscribeTimer: NodeJS.Timeout | undefined
  #resubscribes = 0
  /** The cache may answer only while the subscriber is subscribed. */
  #live = false
  /** Bumped on every invalidation: a read that saw it change does not fill the cache. */
  #epoch = 0

  constructor (settings: LocalCacheSettings) {
    const { max, ttlMs, channel, prefix, now } = settings
    this.#ttlMs = ttlMs
    this.#channel = channel
    this.#prefix = prefix
    this.#entries = new LRUCache<string, SessionRecord>({ max, perf: { now }, ttlResolution: 0 })
  }

  /** The cached session, if the cache may answer and the session is live at `now`. */
  get (id: string, now: number): SessionRecord | undefined {
    const hit = this.#live ? this.#entries.get(id) : undefined
    return hit !== undefined && isLive(hit, now) ? hit : undefined
  }

  /** Taken before a read from Redis, for `fill()`: `undefined` while the cache may not answer. */
  mark (): number | undefined {
    return this.#live ? this.#epoch : undefined
  }

  /** Caches what a read found, unless something was invalidated since its `mark()`. */
  fill (mark: number | undefined, session: SessionRecord, now: number): void {
    if (mark !== undefined && this.#live && this.#epoch === mark) {
      this.#entries.set(session.id, session, { ttl: Math.min(this.#ttlMs, expiresAt(session) - now) })
    }
  }

  /** Drops these sessions, changed or removed by this instance. */
  forget (ids: string[]): void {
    if (ids.length === 0) return
    this.#epoch++
    for (const id of ids) this.#entries.delete(id)
  }

  /**
   * Opens the invalidation subscriber, on a connection of its own next to
   * `client`. Any disconnect empties the cache and stops its use, then a new
   * connection subscribes again.
   */
  listen (client: RedisClient): void {
    const options: RedisSubscriberOptions = {
      lazyConnect: false,
      enableOfflineQueue: false,
      autoResubscribe: false,
      // Named after the prefix, so an operator can tell whose subscriber it is.
      connectionName: `${SUBSCRIBER_NAME}:${this.#prefix.replace(/[^\w:.-]/g, '_')}`,
      // One connection per attempt: the cache reconnects it itself (below).
      retryStrategy: () => null
    }
    // PUBLISH reaches every node of a Cluster: any one will do.
    const nodes = nodesOf(client, 'all')
    const node = nodes[this.#resubscribes % Math.max(1, nodes.length)]
    if (node === undefined) return this.#listenLater(client)
    const sub = node.duplicate(options)
    this.#subscriber = sub
    sub.on('error', noop)
    sub.on('message', (channel: string, message: string) => this.#invalidate(message))
    sub.on('close', () => this.#drop())
    sub.once('end', () => {
      if (this.#subscriber === sub) this.#listenLater(client)
    })
    sub.once('ready', () => {
      // A subscriber that closes (or a store that closes it) first rejects the
      // pending SUBSCRIBE, so reaching here means this one is listening.
      sub.subscribe(this.#channel).then(() => {
        this.#clear()
        this.#live = true
        this.#resubscribes = 0
      }, noop)
    })
  }

  /** Stops listening and empties the cache for good. */
  close (): void {
    clearTimeout(this.#resubscribeTimer)
    this.#subscriber?.disconnect()
    this.#subscriber = undefined
    this.#drop()
  }

  #listenLater (client: RedisClient): void {
    this.#subscriber = undefined
    const delay = Math.min(50 * 2 ** this.#resubscribes++, MAX_RECONNECT_DELAY_MS)
    this.#resubscribeTimer = setTimeout(() => this.listen(client), delay).unref()
  }

  #invalidate (message: string): void {
    let ids: unknown
    try {
      ids = JSON.parse(message)
    } catch {}
    // Not ours to read: forget everything rather than guess.
    if (!Array.isArray(ids)) return this.#clear()
    this.forget(ids.map(String))
  }

  /** Empties the cache; reads in flight will not fill it. */
  #clear (): void {
    this.#epoch++
    this.#entries.clear()
  }

  /** Empties the cache and stops its use until the subscriber listens again. */
  #drop (): void {
    this.#live = false
    this.#clear()
  }
}
