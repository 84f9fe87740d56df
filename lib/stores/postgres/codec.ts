import { isIP } from 'node:net'
import type { Location, SessionRecord, TravelAnchor } from '../../session.js'
import { deviceReader } from '../device-json.js'
import type { Activity, SessionChanges } from '../store.js'

/** A session row as the store's statements select it (`COLUMNS` in `statements.ts`). */
export interface SessionRow {
  id: string
  user_id: string
  fingerprint_hash: string
  created_at: number
  last_seen_at: number
  idle_expires_at: number
  absolute_expires_at: number
  remembered: boolean
  claims: string | null
  refresh_hash: string | null
  refresh_next_hash: string | null
  refresh_rotated_at: number | null
  refresh_rotations: number | null
  device: string | null
  ip: string | null
  ip_hash: string | null
  user_agent: string | null
  location: string | null
  flags: string | null
  travel_anchor: string | null
}

/** A session row read back as a record. */
export type Decode = (row: SessionRow) => SessionRecord

const json = (value: unknown): string | null => value === undefined ? null : JSON.stringify(value)

/**
 * An address kept in full or truncated goes to the `inet` column, anything
 * else (a keyed hash, with `privacy.ipMode: 'hashed'`) to `ip_hash`.
 */
export function ipColumns (ip: string | undefined): [string | null, string | null] {
  if (ip === undefined) return [null, null]
  return isIP(ip) === 0 ? [null, ip] : [ip, null]
}

/** The values of `INSERT` (`Statements.insert`), in its column order. */
export function insertValues (session: SessionRecord): unknown[] {
  const { refresh } = session
  return [
    session.id,
    session.userId,
    session.fingerprintHash,
    session.createdAt,
    session.lastSeenAt,
    session.idleExpiresAt,
    session.absoluteExpiresAt,
    session.remembered,
    json(session.claims),
    refresh?.hash ?? null,
    refresh?.nextHash ?? null,
    refresh?.rotatedAt ?? null,
    refresh?.rotations ?? null,
    json(session.device),
    ...ipColumns(session.ip),
    session.userAgent ?? null,
    json(session.location),
    json(session.flags),
    json(session.travelAnchor)
  ]
}

/**
 * The values of an activity update (`Statements.activity`): the two times,
 * then for each client field whether it changed and its new value (a change
 * to `undefined` clears the column, as `withActivity()` removes the field).
 */
export function activityValues (activity: Activity): unknown[] {
  const changes: SessionChanges = activity.changes ?? {}
  const has = (name: keyof SessionChanges): boolean => name in changes
  return [
    activity.lastSeenAt,
    activity.idleExpiresAt,
    has('device'), json(changes.device),
    has('ip'), ...ipColumns(changes.ip),
    has('userAgent'), changes.userAgent ?? null,
    has('location'), json(changes.location),
    has('flags'), json(changes.flags),
    has('travelAnchor'), json(changes.travelAnchor)
  ]
}

/** A decoder with its own table of devices, so the records it returns share one frozen object per device. */
export function sessionDecoder (): Decode {
  const readDevice = deviceReader()
  return (row) => {
    const ip = row.ip ?? row.ip_hash
    return {
      id: row.id,
      userId: row.user_id,
      fingerprintHash: row.fingerprint_hash,
      createdAt: row.created_at,
      lastSeenAt: row.last_seen_at,
      idleExpiresAt: row.idle_expires_at,
      absoluteExpiresAt: row.absolute_expires_at,
      remembered: row.remembered,
      ...(row.claims === null ? {} : { claims: JSON.parse(row.claims) as Record<string, unknown> }),
      ...(row.refresh_hash === null
        ? {}
        : {
            refresh: {
              hash: row.refresh_hash,
              ...(row.refresh_next_hash === null ? {} : { nextHash: row.refresh_next_hash }),
              rotatedAt: row.refresh_rotated_at as number,
              rotations: row.refresh_rotations as number
            }
          }),
      ...(row.device === null ? {} : { device: readDevice(row.device) }),
      ...(ip === null ? {} : { ip }),
      ...(row.user_agent === null ? {} : { userAgent: row.user_agent }),
      ...(row.location === null ? {} : { location: JSON.parse(row.location) as Location }),
      ...(row.flags === null ? {} : { flags: JSON.parse(row.flags) as string[] }),
      ...(row.travel_anchor === null ? {} : { travelAnchor: JSON.parse(row.travel_anchor) as TravelAnchor })
    }
  }
}
