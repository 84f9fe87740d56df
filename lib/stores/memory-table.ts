import type { DeviceInfo } from '../devices/device.js'
import { liveAt, removableAt, type Location, type SessionRecord, type TravelAnchor } from '../session.js'

/**
 * The sessions of the memory store, column by column, with each user's
 * sessions linked into a list.
 *
 * A session held as an object cost about 760 heap bytes at 1M sessions: the
 * record, its refresh state and claims, five epoch-ms times boxed as heap
 * numbers, three 43-character hash strings and a user-id string per login. Here
 * a session is a slot, a small integer: its times sit in one `Float64Array`,
 * its three SHA-256 hashes as 96 bytes in one buffer, its user as the slot of
 * one user-id string per user (and an IP string per user, when their sessions
 * share it), and flat claims and anomaly flags are shared by every session
 * that has the same ones. `read()` builds a new record on every call, so a
 * record handed out never changes under its holder.
 *
 * A hash that is not a base64url SHA-256 (43 characters) is kept as a string
 * beside the buffer: the table returns every value exactly as it was written.
 */
export class SessionTable {
  readonly #maxSlots: number
  #capacity = 0
  /** Slots handed out at least once: every slot below is in use or free. */
  #high = 0
  /** The first free slot below `#high`, -1 for none; each free slot's `#next` names the one after it. */
  #freeSlot = -1

  // Columns, indexed by slot.
  #users = new Int32Array(0)
  /** `TIMES` per slot: createdAt, lastSeenAt, idleExpiresAt, absoluteExpiresAt, refresh.rotatedAt, refresh.rotations. */
  #times = new Float64Array(0)
  /** `HASH_BYTES` per slot: the fingerprint hash, the refresh hash, the refresh successor's hash. */
  #hashes = Buffer.alloc(0)
  #bits = new Uint8Array(0)
  /**
   * `REFS` per slot, side by side so that a read finds them in one or two
   * cache lines: the id, the claims, the device, the IP, the anomaly flags.
   */
  readonly #refs: unknown[] = []
  /** The fields most sessions lack (`userAgent`, `location`, `travelAnchor`), in one object for a session that has any (bit `HAS_RARE`). */
  readonly #rare = new Map<number, Rare>()
  /** Hashes that are not a base64url SHA-256, by `slot * 3 + column`. */
  readonly #oddHashes = new Map<number, string>()
  /** Each user's sessions, a circular list in the order they were added: the next and previous slot (for a free slot, the next free one). */
  #next = new Int32Array(0)
  #previous = new Int32Array(0)

  readonly #sharedClaims = new SharedValues<Claims>(claimsKey, (claims) => claims)
  readonly #sharedFlags = new SharedValues<Flags>(flagsKey, (flags) => Object.freeze([...flags]))

  // Users, indexed by user slot.
  readonly #userSlots = new Map<string, number>()
  #userIds: Array<string | undefined> = []
  #heads = new Int32Array(0)
  #sizes = new Uint32Array(0)
  #userHigh = 0
  /** The first free user slot, -1 for none; each free user's `#heads` names the one after it. */
  #freeUser = -1
  /** How many users hold n sessions. */
  readonly #usersBySize = new Map<number, number>()

  /** @param maxSlots most slots ever in use at once. */
  constructor (maxSlots: number) {
    this.#maxSlots = maxSlots
  }

  /** Users holding at least one session. */
  get users (): number {
    return this.#userSlots.size
  }

  /** How many users hold n sessions, by n ascending. */
  sessionsPerUser (): Record<number, number> {
    return Object.fromEntries([...this.#usersBySize].sort((a, b) => a[0] - b[0]))
  }

  /** Holds `session` in a new slot, last in its user's list. */
  add (session: SessionRecord): number {
    const slot = this.#freeSlot === -1 ? this.#newSlot() : this.#freeSlot
    if (slot === this.#freeSlot) this.#freeSlot = this.#next[slot] as number
    if (slot * REFS === this.#refs.length) this.#refs.push(session.id, undefined, undefined, undefined, undefined)
    else this.#refs[slot * REFS + ID] = session.id
    const user = this.#userOf(session.userId)
    this.#users[slot] = user
    this.#link(slot, user)
    this.write(slot, session)
    return slot
  }

  /** Replaces what slot `slot` holds with `session`, a later version of the same session. */
  write (slot: number, session: SessionRecord): void {
    const at = slot * TIMES
    const times = this.#times
    if (((this.#bits[slot] as number) & ODD_HASHES) !== 0) this.#forgetOddHashes(slot)
    times[at] = session.createdAt
    times[at + 1] = session.lastSeenAt
    times[at + 2] = session.idleExpiresAt
    times[at + 3] = session.absoluteExpiresAt
    let bits = session.remembered ? REMEMBERED : 0
    bits |= this.#writeHash(slot, FINGERPRINT, session.fingerprintHash)
    const refresh = session.refresh
    if (refresh !== undefined) {
      bits |= HAS_REFRESH | this.#writeHash(slot, REFRESH, refresh.hash)
      times[at + 4] = refresh.rotatedAt
      times[at + 5] = refresh.rotations
      if (refresh.nextHash !== undefined) bits |= HAS_NEXT | this.#writeHash(slot, NEXT, refresh.nextHash)
    }
    this.#bits[slot] = bits
    const claims = this.#refs[slot * REFS + CLAIMS] as Claims | undefined
    if (claims !== session.claims) {
      this.#sharedClaims.release(claims)
      this.#refs[slot * REFS + CLAIMS] = this.#sharedClaims.hold(session.claims)
    }
    this.#writeClient(slot, session)
  }

  /**
   * Writes what activity changes (`withActivity()`): the last-seen time, the
   * idle deadline and the client fields. The rest of `session` must be what
   * the slot holds: its hashes, claims and other times are not written again.
   */
  writeActivity (slot: number, session: SessionRecord): void {
    const at = slot * TIMES
    this.#times[at + 1] = session.lastSeenAt
    this.#times[at + 2] = session.idleExpiresAt
    this.#writeClient(slot, session)
  }

  /** The fields a request tells: device, IP, user agent, location, and the anomaly flags and travel anchor decided from them. */
  #writeClient (slot: number, session: SessionRecord): void {
    const at = slot * REFS
    const refs = this.#refs
    const flags = refs[at + FLAGS] as Flags | undefined
    if (flags !== session.flags) {
      this.#sharedFlags.release(flags)
      refs[at + FLAGS] = this.#sharedFlags.hold(session.flags)
    }
    refs[at + DEVICE] = session.device
    // The string of the user's first session when the IP is the same: one user's sessions often share a network.
    const first = refs[(this.#heads[this.#users[slot] as number] as number) * REFS + IP] as string | undefined
    refs[at + IP] = first !== undefined && first === session.ip ? first : session.ip
    const { userAgent, location, travelAnchor } = session
    if (userAgent === undefined && location === undefined && travelAnchor === undefined) {
      this.#rare.delete(slot)
      this.#bits[slot] = (this.#bits[slot] as number) & ~HAS_RARE
    } else {
      this.#rare.set(slot, { userAgent, location, travelAnchor })
      this.#bits[slot] = (this.#bits[slot] as number) | HAS_RARE
    }
  }

  /** A new record of what slot `slot` holds. */
  read (slot: number): SessionRecord {
    const at = slot * TIMES
    const times = this.#times
    const bits = this.#bits[slot] as number
    // Field by field, in sessionRecord()'s order: every record shares one hidden class per set of fields.
    const record: { -readonly [K in keyof SessionRecord]: SessionRecord[K] } = {
      id: this.#refs[slot * REFS + ID] as string,
      userId: this.#userIds[this.#users[slot] as number] as string,
      fingerprintHash: this.#readHash(slot, FINGERPRINT, bits),
      createdAt: times[at] as number,
      lastSeenAt: times[at + 1] as number,
      idleExpiresAt: times[at + 2] as number,
      absoluteExpiresAt: times[at + 3] as number,
      remembered: (bits & REMEMBERED) !== 0
    }
    const refs = this.#refs
    const ref = slot * REFS
    const claims = refs[ref + CLAIMS] as Claims | undefined
    if (claims !== undefined) record.claims = claims
    if ((bits & HAS_REFRESH) !== 0) {
      record.refresh = (bits & HAS_NEXT) !== 0
        ? { hash: this.#readHash(slot, REFRESH, bits), nextHash: this.#readHash(slot, NEXT, bits), rotatedAt: times[at + 4] as number, rotations: times[at + 5] as number }
        : { hash: this.#readHash(slot, REFRESH, bits), rotatedAt: times[at + 4] as number, rotations: times[at + 5] as number }
    }
    const device = refs[ref + DEVICE] as DeviceInfo | undefined
    if (device !== undefined) record.device = device
    const ip = refs[ref + IP] as string | undefined
    if (ip !== undefined) record.ip = ip
    const rare = (bits & HAS_RARE) === 0 ? undefined : this.#rare.get(slot)
    if (rare?.userAgent !== undefined) record.userAgent = rare.userAgent
    if (rare?.location !== undefined) record.location = rare.location
    const flags = refs[ref + FLAGS] as Flags | undefined
    if (flags !== undefined) record.flags = flags
    if (rare?.travelAnchor !== undefined) record.travelAnchor = rare.travelAnchor
    return record
  }

  /** The id of the session in slot `slot`. */
  idOf (slot: number): string {
    return this.#refs[slot * REFS + ID] as string
  }

  /** `isLive()` of the session in `slot`, without building its record. */
  isLive (slot: number, now: number): boolean {
    return liveAt(this.#expiresAt(slot), now)
  }

  /** `isRemovable()` of the session in `slot`, without building its record. */
  isRemovable (slot: number, now: number): boolean {
    return removableAt(this.#expiresAt(slot), now)
  }

  /** Whether the session ended before `now`: past its deadline by at least a tick, as a TTL that ran out. */
  isPast (slot: number, now: number): boolean {
    return now > this.#expiresAt(slot)
  }

  /** `expiresAt()` of the session in `slot`, read from its columns without building an object on every check. */
  #expiresAt (slot: number): number {
    const at = slot * TIMES
    return Math.min(this.#times[at + 2] as number, this.#times[at + 3] as number)
  }

  /** Frees slot `slot`, unlinking it from its user's list. */
  remove (slot: number): void {
    const user = this.#users[slot] as number
    this.#unlink(slot, user)
    const at = slot * REFS
    this.#sharedClaims.release(this.#refs[at + CLAIMS] as Claims | undefined)
    this.#sharedFlags.release(this.#refs[at + FLAGS] as Flags | undefined)
    this.#refs.fill(undefined, at, at + REFS)
    this.#rare.delete(slot)
    if (((this.#bits[slot] as number) & ODD_HASHES) !== 0) this.#forgetOddHashes(slot)
    this.#bits[slot] = 0
    this.#next[slot] = this.#freeSlot
    this.#freeSlot = slot
  }

  /**
   * The slots of a user's sessions, in the order they were added: a copy, the
   * list may change while it is used. A slot freed meanwhile may hold another
   * session by then: a caller that awaits between slots reads their ids first.
   */
  slotsOf (userId: string): number[] {
    const user = this.#userSlots.get(userId)
    if (user === undefined) return []
    const slots: number[] = []
    const head = this.#heads[user] as number
    let slot = head
    do {
      slots.push(slot)
      slot = this.#next[slot] as number
    } while (slot !== head)
    return slots
  }

  /** The id of every user holding a session. The iterator stays valid while users come and go. */
  userIds (): IterableIterator<string> {
    return this.#userSlots.keys()
  }

  /** The slots in use, in slot order. */
  * slots (): Generator<number> {
    for (let slot = 0; slot < this.#high; slot++) if (this.#refs[slot * REFS + ID] !== undefined) yield slot
  }

  #newSlot (): number {
    if (this.#high === this.#capacity) this.#grow()
    return this.#high++
  }

  /** Doubles every column, up to the most slots. Columns start small: a store sized for 1M costs nothing until it holds sessions. */
  #grow (): void {
    const capacity = Math.min(Math.max(this.#capacity * 2, INITIAL_SLOTS), this.#maxSlots)
    this.#times = grown(this.#times, new Float64Array(capacity * TIMES))
    const hashes = Buffer.alloc(capacity * HASH_BYTES)
    this.#hashes.copy(hashes)
    this.#hashes = hashes
    this.#users = grown(this.#users, new Int32Array(capacity))
    this.#bits = grown(this.#bits, new Uint8Array(capacity))
    this.#next = grown(this.#next, new Int32Array(capacity))
    this.#previous = grown(this.#previous, new Int32Array(capacity))
    this.#capacity = capacity
  }

  /** Writes one hash; returns the bit to set when it is kept as a string. */
  #writeHash (slot: number, column: number, hash: string): number {
    if (SHA256_BASE64URL.test(hash)) {
      this.#hashes.write(hash, slot * HASH_BYTES + column * 32, 32, 'base64url')
      return 0
    }
    this.#oddHashes.set(slot * 3 + column, hash)
    return ODD_HASH << column
  }

  #forgetOddHashes (slot: number): void {
    for (let column = 0; column < 3; column++) this.#oddHashes.delete(slot * 3 + column)
  }

  #readHash (slot: number, column: number, bits: number): string {
    if ((bits & (ODD_HASH << column)) !== 0) return this.#oddHashes.get(slot * 3 + column) as string
    const start = slot * HASH_BYTES + column * 32
    return this.#hashes.toString('base64url', start, start + 32)
  }

  /** The slot of a user, made for its first session. */
  #userOf (userId: string): number {
    const held = this.#userSlots.get(userId)
    if (held !== undefined) return held
    let user = this.#freeUser
    if (user !== -1) this.#freeUser = this.#heads[user] as number
    else {
      user = this.#userHigh++
      if (user >= this.#heads.length) {
        const capacity = Math.min(Math.max(this.#heads.length * 2, INITIAL_SLOTS), this.#maxSlots)
        this.#heads = grown(this.#heads, new Int32Array(capacity))
        this.#sizes = grown(this.#sizes, new Uint32Array(capacity))
      }
    }
    this.#userSlots.set(userId, user)
    this.#userIds[user] = userId
    this.#sizes[user] = 0
    return user
  }

  #link (slot: number, user: number): void {
    const size = this.#sizes[user] as number
    if (size === 0) {
      this.#heads[user] = slot
      this.#next[slot] = slot
      this.#previous[slot] = slot
    } else {
      const head = this.#heads[user] as number
      const tail = this.#previous[head] as number
      this.#next[tail] = slot
      this.#previous[slot] = tail
      this.#next[slot] = head
      this.#previous[head] = slot
    }
    this.#sizes[user] = size + 1
    this.#resize(size, size + 1)
  }

  #unlink (slot: number, user: number): void {
    const size = this.#sizes[user] as number
    this.#sizes[user] = size - 1
    this.#resize(size, size - 1)
    if (size === 1) {
      const userId = this.#userIds[user] as string
      this.#userSlots.delete(userId)
      this.#userIds[user] = undefined
      this.#heads[user] = this.#freeUser
      this.#freeUser = user
      return
    }
    const next = this.#next[slot] as number
    const previous = this.#previous[slot] as number
    this.#next[previous] = next
    this.#previous[next] = previous
    if (this.#heads[user] === slot) this.#heads[user] = next
  }

  /** Keeps the sessions-per-user histogram in step when a user's count goes from `from` to `to`. */
  #resize (from: number, to: number): void {
    if (from > 0) {
      const users = (this.#usersBySize.get(from) as number) - 1
      if (users === 0) this.#usersBySize.delete(from)
      else this.#usersBySize.set(from, users)
    }
    if (to > 0) this.#usersBySize.set(to, (this.#usersBySize.get(to) ?? 0) + 1)
  }
}

/**
 * Values held once for every session that has equal ones, counted so that the
 * last session to go takes them along. `share(value)` gives the value to keep:
 * the one already held for its key, or the value itself, or its copy, when it
 * is the first; `undefined` for a value that cannot be shared, which the
 * session keeps as its own.
 */
class SharedValues<T extends object> {
  readonly #held = new Map<string, { readonly value: T, holders: number }>()
  /** The key of each shared value, to release it. */
  readonly #keys = new WeakMap<object, string>()
  readonly #keyOf: (value: T) => string | undefined
  readonly #first: (value: T) => T

  /**
   * @param keyOf a key that only equal values share, `undefined` for a value that is not shared.
   * @param first the value to share, from the first one seen: itself if it is frozen, else a frozen copy.
   */
  constructor (keyOf: (value: T) => string | undefined, first: (value: T) => T) {
    this.#keyOf = keyOf
    this.#first = first
  }

  hold (value: T | undefined): T | undefined {
    if (value === undefined) return value
    const key = this.#keyOf(value)
    if (key === undefined) return value
    const held = this.#held.get(key)
    if (held !== undefined) {
      held.holders++
      return held.value
    }
    const shared = this.#first(value)
    this.#held.set(key, { value: shared, holders: 1 })
    this.#keys.set(shared, key)
    return shared
  }

  release (value: T | undefined): void {
    if (value === undefined) return
    const key = this.#keys.get(value)
    if (key === undefined) return
    const held = this.#held.get(key) as { holders: number }
    if (--held.holders === 0) this.#held.delete(key)
  }
}

/**
 * Flat claims (every value a string, a finite number, a boolean or null), when
 * frozen (`checkClaims()` freezes them): one object can then serve every
 * session. Claims with a nested value stay the session's own.
 */
function claimsKey (claims: Readonly<Record<string, unknown>>): string | undefined {
  if (!Object.isFrozen(claims)) return undefined
  for (const value of Object.values(claims)) {
    // -0 is written as 0 by JSON: claims holding it stay their own.
    if (typeof value === 'number' ? !Number.isFinite(value) || Object.is(value, -0) : value !== null && typeof value !== 'string' && typeof value !== 'boolean') return undefined
  }
  // In their order: { a, b } and { b, a } are kept apart.
  return JSON.stringify(claims)
}

/** Anomaly flags, when every one is a string: most sessions carry none, or the same one or two. */
function flagsKey (flags: readonly string[]): string | undefined {
  return flags.every((flag) => typeof flag === 'string') ? JSON.stringify(flags) : undefined
}

type Claims = Readonly<Record<string, unknown>>
type Flags = readonly string[]

interface Rare {
  readonly userAgent: string | undefined
  readonly location: Location | undefined
  readonly travelAnchor: TravelAnchor | undefined
}

/** Copies `from` into the start of `to`, a larger column. */
function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array> (from: T, to: T): T {
  to.set(from as ArrayLike<number> & T)
  return to
}

const TIMES = 6
const REFS = 5
const ID = 0
const CLAIMS = 1
const DEVICE = 2
const IP = 3
const FLAGS = 4
const HASH_BYTES = 96
const INITIAL_SLOTS = 1024
const FINGERPRINT = 0
const REFRESH = 1
const NEXT = 2
const REMEMBERED = 1
const HAS_REFRESH = 2
const HAS_NEXT = 4
/** Shifted by the column: the hash of that column is in `#oddHashes`. */
const ODD_HASH = 8
const ODD_HASHES = ODD_HASH * 7
const HAS_RARE = 64
/** A SHA-256 as unpadded base64url: 42 characters, and a last one whose two low bits are zero, so the string round-trips through 32 bytes. */
const SHA256_BASE64URL = /^[\w-]{42}[AEIMQUYcgkosw048]$/
