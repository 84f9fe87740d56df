import type { DeviceInfo, DeviceType } from './devices/device.js'

export type { DeviceType } from './devices/device.js'

/** Milliseconds since the epoch, from the injected clock. */
export type Clock = () => number

/**
 * The refresh-token state of a session. Only hashes are kept.
 *
 * The successor of a rotation (`nextHash`) becomes current on its first use,
 * so a response lost on the way to the client never raises a false alarm:
 * until then the current token still works (after the grace window).
 */
export interface RefreshState {
  /** Hash of the newest refresh token the client has proven to hold. */
  readonly hash: string
  /** Hash of the successor issued by the last rotation, not used yet. */
  readonly nextHash?: string
  /** When the last rotation happened (epoch ms). */
  readonly rotatedAt: number
  /** How many rotations the session has gone through. */
  readonly rotations: number
}

/**
 * One session as the store keeps it. Records are immutable: every change
 * stores a new object, so a record handed out can never change under its holder.
 */
export interface SessionRecord {
  /** Random id, at least 128 bits, base64url. */
  readonly id: string
  readonly userId: string
  /** SHA-256 (base64url) of the fingerprint kept in the HttpOnly cookie. */
  readonly fingerprintHash: string
  /** Epoch ms of the login. */
  readonly createdAt: number
  /** Epoch ms of the last recorded activity (throttled by `touchInterval`). */
  readonly lastSeenAt: number
  /** The session ends here unless activity extends it (sliding). */
  readonly idleExpiresAt: number
  /** The session ends here whatever happens (never extended). */
  readonly absoluteExpiresAt: number
  /** Whether the login asked to be remembered (longer lifetimes, persistent cookies). */
  readonly remembered: boolean
  /** The app's own claims, signed into every access token of the session. */
  readonly claims?: Readonly<Record<string, unknown>>
  readonly refresh?: RefreshState
  /** The device, parsed from User-Agent and client hints (one shared object per distinct device). */
  readonly device?: DeviceInfo
  /** The client's IP as the privacy policy keeps it (full, truncated, hashed; absent with 'none'). */
  readonly ip?: string
  /** The raw User-Agent, only with `privacy.keepUserAgent`. */
  readonly userAgent?: string
  /** Where the client was, from the app's `resolveLocation` hook. */
  readonly location?: Location
  /** Anomalies flagged on this session (`'new_device'`, `'new_country'`, `'ip_change'` …). */
  readonly flags?: readonly string[]
  /**
   * Where the impossible-travel rule measures from, besides the last place: the
   * login place, moved only to a place a check let through at `minDistanceKm` or
   * more, so hops each shorter than that still add up. Absent: `location` at `createdAt`.
   */
  readonly travelAnchor?: TravelAnchor
}

/** A place a session was at, and when (see `SessionRecord.travelAnchor`). */
export interface TravelAnchor {
  readonly latitude: number
  readonly longitude: number
  readonly country?: string
  /** Epoch ms. */
  readonly at: number
}

/** A location as the app's `resolveLocation(ip)` hook returns it. */
export interface Location {
  /** ISO 3166-1 alpha-2 country code, e.g. `'FR'`. */
  readonly country?: string
  readonly city?: string
  readonly latitude?: number
  readonly longitude?: number
}

/** How long a session lives: idle (sliding) and absolute (fixed at login). */
export interface Lifetime {
  readonly idleMs: number
  readonly absoluteMs: number
}

/** The lifetimes of ordinary and remembered ("remember me") sessions. */
export interface Lifetimes {
  readonly normal: Lifetime
  readonly remembered: Lifetime
}

/** The client fields of a session: what the request says about where it comes from. */
export type ClientInfo = Pick<SessionRecord, 'device' | 'ip' | 'userAgent' | 'location'>

/** The fields of a session that activity may change besides its times. */
export type SessionChanges = Pick<SessionRecord, 'device' | 'ip' | 'userAgent' | 'location' | 'flags' | 'travelAnchor'>

/** Activity to record on a session: a store's `touch` and `rotate` write it. */
export interface Activity {
  readonly lastSeenAt: number
  readonly idleExpiresAt: number
  /** Fields that changed since the session last recorded them (a new IP, device or location; anomaly flags; the travel anchor). */
  readonly changes?: SessionChanges
}

/** The lifetime a session gets, by whether it is remembered. */
export function lifetimeOf (lifetimes: Lifetimes, remembered: boolean): Lifetime {
  return remembered ? lifetimes.remembered : lifetimes.normal
}

/** The times of a session that starts `now`: the idle deadline never lies past the absolute one. */
export function startTimes (now: number, lifetime: Lifetime): Pick<SessionRecord, 'createdAt' | 'lastSeenAt' | 'idleExpiresAt' | 'absoluteExpiresAt'> {
  return {
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + Math.min(lifetime.idleMs, lifetime.absoluteMs),
    absoluteExpiresAt: now + lifetime.absoluteMs
  }
}

/**
 * The activity to record for a request or a refresh of `session` at `now`: the
 * idle deadline slides forward but never past the absolute one; the client's
 * changes are kept, and anomaly flags are added to those the session carries.
 */
export function activityAt (session: SessionRecord, now: number, lifetime: Lifetime, client?: Omit<SessionChanges, 'flags'>, flags: readonly string[] = []): Activity {
  const activity = { lastSeenAt: now, idleExpiresAt: Math.min(now + lifetime.idleMs, session.absoluteExpiresAt) }
  if (client === undefined && flags.length === 0) return activity
  const changes: SessionChanges = flags.length === 0 ? { ...client } : { ...client, flags: [...new Set([...session.flags ?? [], ...flags])] }
  return { ...activity, changes }
}

/**
 * The device type a session counts under for a per-type limit
 * (`deviceTypeLimits`): its device's, `'unknown'` when it has none.
 */
export function deviceTypeOf (session: Pick<SessionRecord, 'device'>): DeviceType {
  return session.device?.type ?? 'unknown'
}

/** The moment a session stops being usable: the earlier of its two deadlines. */
export function expiresAt (session: Pick<SessionRecord, 'idleExpiresAt' | 'absoluteExpiresAt'>): number {
  return Math.min(session.idleExpiresAt, session.absoluteExpiresAt)
}

/** Whether a session is still usable at `now`. */
export function isLive (session: Pick<SessionRecord, 'idleExpiresAt' | 'absoluteExpiresAt'>, now: number): boolean {
  return liveAt(expiresAt(session), now)
}

/** `isLive()` of a session that ends at `deadline` (its `expiresAt()`). */
export function liveAt (deadline: number, now: number): boolean {
  return now < deadline
}

/**
 * Whether `held` is newer than `incoming`, two copies of one session: more
 * refresh rotations, or as many and later activity. An import keeps `held`
 * then, so an older copy never rolls a session back (a rotated-away refresh
 * token must not come back to life).
 */
export function supersedes (held: SessionRecord, incoming: SessionRecord): boolean {
  const heldRotations = held.refresh?.rotations ?? 0
  const incomingRotations = incoming.refresh?.rotations ?? 0
  if (heldRotations !== incomingRotations) return heldRotations > incomingRotations
  return held.lastSeenAt > incoming.lastSeenAt
}

/**
 * How far past its deadline, by a caller's `now`, a shared store may remove a
 * session. A session past a deadline is refused at once by every read, but
 * instances' clocks differ: one whose clock runs ahead must not end, for every
 * other instance, a session that is still live by theirs. One hour covers any
 * clock kept by NTP many times over; an instance further ahead than that can
 * still only remove sessions its own clock says ended an hour ago.
 */
export const CLOCK_SKEW_ALLOWANCE_MS = 60 * 60_000

/**
 * Whether a store may remove a session that is no longer live at `now`: only
 * once it is past its deadline by more than `CLOCK_SKEW_ALLOWANCE_MS`.
 * A revocation removes a session whatever this says.
 */
export function isRemovable (session: Pick<SessionRecord, 'idleExpiresAt' | 'absoluteExpiresAt'>, now: number): boolean {
  return removableAt(expiresAt(session), now)
}

/** `isRemovable()` of a session that ends at `deadline` (its `expiresAt()`). */
export function removableAt (deadline: number, now: number): boolean {
  return now >= deadline + CLOCK_SKEW_ALLOWANCE_MS
}

/** Which deadline an expired session has passed: the absolute one wins when both have. */
export function expiryReason (session: SessionRecord, now: number): 'absolute' | 'idle' {
  return now >= session.absoluteExpiresAt ? 'absolute' : 'idle'
}

/** What a refresh with a given token hash must do, decided from the session's refresh state. */
export type RotationDecision =
  /** The token is current (or the pending successor): rotate to `successorHash`. */
  | 'rotate'
  /** The token was rotated a moment ago by a parallel request: refuse, change nothing. */
  | 'conflict'
  /** The token is an older generation: the session is stolen, revoke it. */
  | 'reuse'

/**
 * The theft-detection rule, shared by every store (the Redis store's Lua script
 * mirrors it; the conformance suite holds them to the same answers).
 */
export function decideRotation (state: RefreshState, presentedHash: string, now: number, graceMs: number): RotationDecision {
  if (presentedHash === state.nextHash) return 'rotate'
  if (presentedHash === state.hash) {
    if (state.nextHash === undefined) return 'rotate'
    // The successor exists but was never used: a parallel tab (inside the grace
    // window) or a response lost on its way to the client (after it).
    return now - state.rotatedAt < graceMs ? 'conflict' : 'rotate'
  }
  return 'reuse'
}

/** The refresh state after a rotation decided as `'rotate'`. */
export function rotatedState (state: RefreshState, presentedHash: string, successorHash: string, now: number): RefreshState {
  return {
    // Using the successor proves the client holds it: it becomes current.
    // Re-using the current one (lost response) keeps it current.
    hash: presentedHash,
    nextHash: successorHash,
    rotatedAt: now,
    rotations: state.rotations + 1
  }
}

/**
 * A record holding the fields of `fields`, set one by one in one order: every
 * record with the same optional fields then shares one hidden class in V8. A
 * record a store keeps must be made here. An object literal that starts with a
 * spread (`{ ...session, lastSeenAt }`) gets a hidden class of its own once V8
 * optimises the spread, about 500 bytes more for each record held. An optional
 * field that is `undefined` is left out.
 */
export function sessionRecord (fields: SessionRecord): SessionRecord {
  const record: { -readonly [K in keyof SessionRecord]: SessionRecord[K] } = {
    id: fields.id,
    userId: fields.userId,
    fingerprintHash: fields.fingerprintHash,
    createdAt: fields.createdAt,
    lastSeenAt: fields.lastSeenAt,
    idleExpiresAt: fields.idleExpiresAt,
    absoluteExpiresAt: fields.absoluteExpiresAt,
    remembered: fields.remembered
  }
  if (fields.claims !== undefined) record.claims = fields.claims
  if (fields.refresh !== undefined) record.refresh = fields.refresh
  if (fields.device !== undefined) record.device = fields.device
  if (fields.ip !== undefined) record.ip = fields.ip
  if (fields.userAgent !== undefined) record.userAgent = fields.userAgent
  if (fields.location !== undefined) record.location = fields.location
  if (fields.flags !== undefined) record.flags = fields.flags
  if (fields.travelAnchor !== undefined) record.travelAnchor = fields.travelAnchor
  return record
}

/** A session after activity: the new activity times, and whatever else changed (a change to `undefined` removes the field). */
export function withActivity (session: SessionRecord, activity: Activity): SessionRecord {
  return sessionRecord({ ...session, ...activity.changes, lastSeenAt: activity.lastSeenAt, idleExpiresAt: activity.idleExpiresAt })
}

/**
 * The flag of a session an anomaly rule challenged (decision `'challenge'`):
 * restricted to the routes that allow it (`config: { allowChallenged: true }`)
 * until the app's second factor completes the step-up (`request.completeChallenge()`).
 */
export const CHALLENGE_FLAG = 'challenge'

/** Whether a session awaits a step-up. */
export function isChallenged (session: Pick<SessionRecord, 'flags'>): boolean {
  return session.flags !== undefined && session.flags.includes(CHALLENGE_FLAG)
}

/**
 * The sessions a new login may sign out to make room under the per-user limit:
 * any, for a login the anomaly rules let through; only those still waiting for
 * their own step-up, for a challenged login. A login that has not passed its
 * second factor must never push out the user's proven sessions, and with them
 * the places and devices the anomaly rules measure the next login from.
 */
export function displaceable (login: Pick<SessionRecord, 'flags'>, sessions: readonly SessionRecord[]): SessionRecord[] {
  return isChallenged(login) ? sessions.filter(isChallenged) : [...sessions]
}
