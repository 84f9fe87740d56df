import slotOf from 'cluster-key-slot'

/** Session ids become parts of keys: the plugin's are base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/
/** The keys behind `stats()`, in the order the stats scripts take them. */
const STATS_KEYS = ['sessions', 'users', 'removed', 'sizes', 'sized', 'hist']
/** The hash slots of a Redis Cluster. */
const SLOTS = 16384

/** What a session key holds: a string, or the hash of an earlier version (see `scripts.ts`). */
export type SessionKeyType = 'string' | 'hash'

/**
 * The store's keys. After the prefix:
 * - `{u:<userId>}:r:<sessionId>` the session, a string (JSON, see `scripts.ts`);
 *   an earlier version's is a hash at `{u:<userId>}:s:<sessionId>`, still read;
 * - `{u:<userId>}:i` the user's index, a sorted set of session ids scored by deadline;
 * - `id:{<sessionId>}` the session's user id, a string;
 * - `{u:<userId>}:h` the user's login history, a list (`history.ts`);
 * - `{u:<userId>}:v` the version of the user's index size, bumped when it changes;
 * - `{stats:<n>:<k>}:sessions`, `…:users`, `…:sizes`, `…:sized`, `…:hist`
 *   the bookkeeping behind `stats()`, in `statsShards` shards, and
 *   `{stats:<n>:<k>}:removed:<userId>` the user's latest removals (at most 32,
 *   for a minute after the last), in the user's shard (see `statsTags`);
 * - `c:<key>` a counter (`increment`, `decrement`), a hash that lives its window after its last event;
 * - channel `invalidate`, the local caches' invalidations.
 *
 * The keys of one user share the hash tag `{u:<userId>}`, so every script
 * touches one Cluster slot and runs as one atomic step. `get(id)` only knows
 * the id, so a small lookup key in the id's own slot names the user.
 *
 * A client's own `keyPrefix` comes before all of these: ioredis adds it to the
 * keys a command declares, so the store leaves it out of those, but adds it to
 * the keys a script builds itself and expects it on the keys SCAN returns.
 */
export class KeyLayout {
  readonly #prefix: string
  /** The hash tag of each stats shard, the n-th of a slot in the n-th of as many equal slot ranges. */
  readonly #statsTags: readonly string[]
  #clientPrefix = ''
  /** The channel of the local caches' invalidations. */
  readonly channel: string

  constructor (prefix: string, statsShards: number) {
    this.#prefix = prefix
    this.#statsTags = statsTags(statsShards)
    this.channel = `${prefix}invalidate`
  }

  /** Takes the client's own `keyPrefix`, once the store knows its client. */
  useClientPrefix (keyPrefix: string | undefined): void {
    this.#clientPrefix = keyPrefix ?? ''
  }

  index (userId: string): string { return `${this.#prefix}{u:${userId}}:i` }
  history (userId: string): string { return `${this.#prefix}{u:${userId}}:h` }
  session (userId: string, id: string): string { return this.#sessionBase(userId) + id }
  /** The session key base as a script sees it, to build the keys of a user's sessions itself. */
  scriptBase (userId: string): string { return this.#clientPrefix + this.#sessionBase(userId) }
  lookup (id: string): string { return `${this.#prefix}id:{${id}}` }
  /**
   * The stats keys of the user's shard, the third being the user's removal
   * markers: the shard whose slot range holds the user's own slot, so on a
   * Cluster whose masters own whole ranges the follow-up goes to the master
   * that ran the user's script.
   */
  stats (userId: string): string[] {
    const shard = Math.floor(slotOf(this.index(userId)) * this.#statsTags.length / SLOTS)
    const keys = this.#statsShard(this.#statsTags[shard] as string)
    keys[2] = `${keys[2] as string}:${userId}`
    return keys
  }

  /** The stats keys of every shard, as the stats script takes them (the third unused). */
  statsShards (): string[][] {
    return this.#statsTags.map((tag) => this.#statsShard(tag))
  }

  counter (key: string): string { return `${this.#prefix}c:${key}` }

  /**
   * The SCAN MATCH patterns of every session key of this prefix, with the
   * type each holds: the strings, and the hashes of an earlier version (SCAN
   * names keys with the client's `keyPrefix`).
   */
  sessionPatterns (): Array<readonly [pattern: string, type: SessionKeyType]> {
    const base = `${globEscape(this.#clientPrefix + this.#prefix)}{u:*}`
    return [[`${base}:r:*`, 'string'], [`${base}:s:*`, 'hash']]
  }

  /**
   * The user id and session id named by a key that SCAN found with the
   * pattern of `type` (see `sessionPatterns`), or `undefined` when what
   * follows the pattern's marker is no session id. A session id holds no `}`,
   * so the last `}:r:` (`}:s:` for a hash) ends the user id, whatever that holds.
   */
  sessionOf (scanned: string, type: SessionKeyType): { userId: string, id: string } | undefined {
    const key = scanned.slice(this.#clientPrefix.length + this.#prefix.length)
    const end = key.lastIndexOf(type === 'string' ? '}:r:' : '}:s:')
    const id = key.slice(end + 4)
    return SESSION_ID.test(id) ? { userId: key.slice('{u:'.length, end), id } : undefined
  }

  /** The SCAN MATCH pattern of every counter key of this prefix. */
  counterPattern (): string {
    return `${globEscape(this.#clientPrefix + this.#prefix)}c:*`
  }

  /** The counter's own key (as `increment` took it) from its key as SCAN named it. */
  counterKeyOf (scanned: string): string {
    return scanned.slice(this.#clientPrefix.length + this.#prefix.length + 2)
  }

  /** A key as SCAN named it, without the client's `keyPrefix`: the client adds it back. */
  fromScan (key: string): string {
    return key.slice(this.#clientPrefix.length)
  }

  #sessionBase (userId: string): string { return `${this.#prefix}{u:${userId}}:r:` }
  #statsShard (tag: string): string[] { return STATS_KEYS.map((name) => `${this.#prefix}{${tag}}:${name}`) }
}

/**
 * The hash tags of `shards` stats shards: shard n is `stats:<n>:<k>` with the
 * smallest k whose slot lies in the n-th of `shards` equal ranges of the 16384
 * slots. Spread so, the shards split evenly over any Cluster whose masters own
 * equal contiguous ranges (what `redis-cli --cluster create` and `rebalance`
 * make), and no master takes every login's bookkeeping.
 */
export function statsTags (shards: number): string[] {
  const tags: string[] = []
  for (let n = 0; n < shards; n++) {
    const [from, to] = [Math.ceil(n * SLOTS / shards), Math.ceil((n + 1) * SLOTS / shards)]
    let k = 0
    while (!inRange(slotOf(`{stats:${n}:${k}}`), from, to)) k++
    tags.push(`stats:${n}:${k}`)
  }
  return tags
}

function inRange (slot: number, from: number, to: number): boolean {
  return slot >= from && slot < to
}

/** Refuses a session id that could not safely be part of a key. */
export function checkId (id: string): void {
  if (!SESSION_ID.test(id)) {
    throw new TypeError('redisStore: a session id must be 1 to 128 base64url characters')
  }
}

/** A key's TTL: milliseconds from `now` to `deadline`, at least 1 (0 or less would mean "no TTL" or an error). */
export function ttl (deadline: number, now: number): number {
  return Math.max(1, Math.ceil(deadline - now))
}

/** A glob pattern matching `text` literally (for SCAN MATCH). */
function globEscape (text: string): string {
  return text.replace(/[\\*?[\]]/g, '\\$&')
}
