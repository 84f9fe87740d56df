import type { Location, SessionRecord, TravelAnchor } from '../../session.js'
import { deviceReader, type DeviceReader } from '../device-json.js'
import type { Activity, SessionChanges } from '../store.js'
import type { Arg } from './connection.js'

/**
 * A session hash's fields by name, as ioredis's `hgetall` gives them (a plain
 * object): the layout of an earlier version (see `scripts.ts`), still read.
 */
export type SessionFields = Readonly<Partial<Record<string, string>>>

/**
 * A field of the record, read from the object's own properties only: a
 * property planted on `Object.prototype` (prototype pollution elsewhere in the
 * app) must not make an empty reply read as a live session.
 */
export function fieldOf (fields: SessionFields, name: string): string | undefined {
  return Object.hasOwn(fields, name) ? fields[name] : undefined
}

/**
 * A stored session read back as a record: its JSON, as the store writes it
 * and the scripts reply, or the fields of a hash an earlier version wrote;
 * its user id and id are those of its key.
 */
export type Decode = (userId: string, id: string, stored: string | SessionFields) => SessionRecord

/** The client fields of a record, and their short names. */
const CLIENT_FIELDS = [
  ['device', 'v'], ['ip', 'p'], ['userAgent', 'g'], ['location', 'o'], ['flags', 'x'], ['travelAnchor', 'y']
] as const

/**
 * A text field of an earlier version's hash: whole, or its pieces joined
 * (a device, user agent, location or travel anchor over 64 bytes was kept in
 * pieces `v1`, `v2` … instead of `v`, so that the hash stayed a listpack);
 * `undefined` when absent.
 */
function joined (fields: SessionFields, field: string): string | undefined {
  const whole = fieldOf(fields, field)
  if (whole !== undefined) return whole
  let value: string | undefined
  for (let n = 1, piece = fieldOf(fields, `${field}1`); piece !== undefined; piece = fieldOf(fields, `${field}${++n}`)) value = (value ?? '') + piece
  return value
}

/**
 * A record as the store keeps it: one JSON object, short field names, every
 * value a string (see `scripts.ts`), without the id and the user id, which
 * its key holds. The scripts decode it with `cjson` and never re-encode the
 * JSON values inside it (claims, device, location …).
 */
export function encode (session: SessionRecord): string {
  const fields: Record<string, string> = {
    f: session.fingerprintHash,
    c: String(session.createdAt),
    l: String(session.lastSeenAt),
    i: String(session.idleExpiresAt),
    a: String(session.absoluteExpiresAt),
    r: session.remembered ? '1' : '0'
  }
  if (session.claims !== undefined) fields.m = JSON.stringify(session.claims)
  const { refresh } = session
  if (refresh !== undefined) {
    fields.h = refresh.hash
    fields.t = String(refresh.rotatedAt)
    fields.k = String(refresh.rotations)
    if (refresh.nextHash !== undefined) fields.n = refresh.nextHash
  }
  for (const [name, field] of CLIENT_FIELDS) {
    const value = session[name]
    if (value !== undefined) fields[field] = encodeClient(name, value)
  }
  return JSON.stringify(fields)
}

/**
 * A client field's value as stored: JSON, or the text itself for the IP and
 * the user agent, made well-formed (a surrogate without its pair, which no
 * header holds, would make the record JSON that Lua's `cjson` refuses).
 */
function encodeClient (name: keyof SessionChanges, value: NonNullable<SessionChanges[keyof SessionChanges]>): string {
  return name === 'ip' || name === 'userAgent' ? (value as string).toWellFormed() : JSON.stringify(value)
}

/**
 * Activity as the touch and rotate scripts take it: the count of fields to
 * delete, those fields, then field/value pairs, the times first. A change to
 * `undefined` removes the field, as `withActivity()` does.
 */
export function encodeActivity (activity: Activity): Arg[] {
  const removed: string[] = []
  const set: string[] = ['l', String(activity.lastSeenAt), 'i', String(activity.idleExpiresAt)]
  const { changes } = activity
  if (changes !== undefined) {
    for (const [name, field] of CLIENT_FIELDS) {
      if (!(name in changes)) continue
      const value = changes[name]
      if (value === undefined) removed.push(field)
      else set.push(field, encodeClient(name, value))
    }
  }
  return [removed.length, ...removed, ...set]
}

/** A decoder with its own bounded table of devices, so the records it returns share one object per device. */
export function sessionDecoder (): Decode {
  const readDevice = deviceReader()
  return (userId, id, stored) => decode(userId, id, typeof stored === 'string' ? JSON.parse(stored) as SessionFields : stored, readDevice)
}

function decode (userId: string, id: string, fields: SessionFields, readDevice: DeviceReader): SessionRecord {
  const field = (name: string): string => fieldOf(fields, name) as string
  const claims = fieldOf(fields, 'm')
  const hash = fieldOf(fields, 'h')
  const nextHash = fieldOf(fields, 'n')
  const device = joined(fields, 'v')
  const ip = fieldOf(fields, 'p')
  const userAgent = joined(fields, 'g')
  const location = joined(fields, 'o')
  const flags = fieldOf(fields, 'x')
  const travelAnchor = joined(fields, 'y')
  return {
    id,
    userId,
    fingerprintHash: field('f'),
    createdAt: Number(field('c')),
    lastSeenAt: Number(field('l')),
    idleExpiresAt: Number(field('i')),
    absoluteExpiresAt: Number(field('a')),
    remembered: field('r') === '1',
    ...(claims === undefined ? {} : { claims: JSON.parse(claims) as Record<string, unknown> }),
    ...(hash === undefined
      ? {}
      : {
          refresh: {
            hash,
            ...(nextHash === undefined ? {} : { nextHash }),
            rotatedAt: Number(field('t')),
            rotations: Number(field('k'))
          }
        }),
    ...(device === undefined ? {} : { device: readDevice(device) }),
    ...(ip === undefined ? {} : { ip }),
    ...(userAgent === undefined ? {} : { userAgent }),
    ...(location === undefined ? {} : { location: JSON.parse(location) as Location }),
    ...(flags === undefined ? {} : { flags: JSON.parse(flags) as string[] }),
    ...(travelAnchor === undefined ? {} : { travelAnchor: JSON.parse(travelAnchor) as TravelAnchor })
  }
}
