import type { Location, SessionRecord, TravelAnchor } from '../../session.js'
import { deviceReader, type DeviceReader } from '../device-json.js'
import type { Activity, SessionChanges } from '../store.js'
import type { Arg } from './connection.js'

/** A session hash's fields by name, as ioredis's `hgetall` gives them (a plain object). */
export type SessionFields = Readonly<Partial<Record<string, string>>>

/**
 * A field of the hash, read from the object's own properties only: a property
 * planted on `Object.prototype` (prototype pollution elsewhere in the app) must
 * not make a deleted session's empty reply read as a live session.
 */
export function fieldOf (fields: SessionFields, name: string): string | undefined {
  return Object.hasOwn(fields, name) ? fields[name] : undefined
}

/**
 * A session hash read back as a record: a flat field/value list, as the
 * scripts give it, or the fields by name, as `hgetall` does.
 */
export type Decode = (hash: string[] | SessionFields) => SessionRecord

/**
 * The client fields of a record: its hash field, and whether a long value of
 * it goes in pieces (see `pushText`).
 */
const CLIENT_FIELDS = [
  ['device', 'v', true], ['ip', 'p', false], ['userAgent', 'g', true], ['location', 'o', true], ['flags', 'x', false], ['travelAnchor', 'y', true]
] as const

/**
 * Longest value Redis keeps a hash compact with (`hash-max-listpack-value`, 64
 * bytes by default): one longer value makes the whole hash a hashtable, about
 * twice its size. The device, user agent, location and travel anchor, often
 * longer, go in pieces of at most this many bytes.
 */
const PIECE_BYTES = 64
/** Most pieces of one value; the last holds the rest (read back the same, only less compact). */
const MAX_PIECES = 16

/**
 * Appends `field`, `value` to `fields`: whole under `field` when it fits in
 * `PIECE_BYTES` bytes, or else in pieces under `field1`, `field2` … with no
 * `field` (`joined` reads either; so does the scripts' `joined`). Each piece
 * ends between two characters, so each is UTF-8 of its own. A reader of an
 * earlier version, which knows only `field`, finds a pieced value absent
 * rather than cut: during a rolling upgrade it sees no device, user agent,
 * location or travel anchor on such a session, and fails on nothing. The
 * claims, user id, IP and flags are never pieced: every reader must see them.
 */
function pushText (fields: string[], field: string, value: string): void {
  // At most 3 UTF-8 bytes per UTF-16 unit: a value this short fits whatever it holds.
  if (value.length <= PIECE_BYTES / 3 || Buffer.byteLength(value) <= PIECE_BYTES) {
    fields.push(field, value)
    return
  }
  let piece = ''
  let bytes = 0
  let n = 1
  for (const character of value) {
    const size = Buffer.byteLength(character)
    if (bytes + size > PIECE_BYTES && n < MAX_PIECES) {
      fields.push(`${field}${n++}`, piece)
      piece = ''
      bytes = 0
    }
    piece += character
    bytes += size
  }
  fields.push(`${field}${n}`, piece)
}

/** `field` and every piece it could have: a changed value deletes them all before it is written. */
function allOf (field: string): string[] {
  return [field, ...Array.from({ length: MAX_PIECES }, (_, i) => `${field}${i + 1}`)]
}

/** A text field written by `pushText`: whole, or its pieces joined; `undefined` when absent. */
function joined (fields: SessionFields, field: string): string | undefined {
  const whole = fieldOf(fields, field)
  if (whole !== undefined) return whole
  let value: string | undefined
  for (let n = 1, piece = fieldOf(fields, `${field}1`); piece !== undefined; piece = fieldOf(fields, `${field}${++n}`)) value = (value ?? '') + piece
  return value
}

/** A record as hash fields (see `scripts.ts`); the id comes first, as the scripts expect. */
export function encode (session: SessionRecord): string[] {
  const fields = [
    'd', session.id,
    'u', session.userId,
    'f', session.fingerprintHash,
    'c', String(session.createdAt),
    'l', String(session.lastSeenAt),
    'i', String(session.idleExpiresAt),
    'a', String(session.absoluteExpiresAt),
    'r', session.remembered ? '1' : '0'
  ]
  if (session.claims !== undefined) fields.push('m', JSON.stringify(session.claims))
  const { refresh } = session
  if (refresh !== undefined) {
    fields.push('h', refresh.hash, 't', String(refresh.rotatedAt), 'k', String(refresh.rotations))
    if (refresh.nextHash !== undefined) fields.push('n', refresh.nextHash)
  }
  for (const [name, field, pieced] of CLIENT_FIELDS) {
    const value = session[name]
    if (value !== undefined) pushClient(fields, field, pieced, encodeClient(name, value))
  }
  return fields
}

function pushClient (fields: string[], field: string, pieced: boolean, value: string): void {
  if (pieced) pushText(fields, field, value)
  else fields.push(field, value)
}

function encodeClient (name: keyof SessionChanges, value: NonNullable<SessionChanges[keyof SessionChanges]>): string {
  return name === 'ip' || name === 'userAgent' ? value as string : JSON.stringify(value)
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
    for (const [name, field, pieced] of CLIENT_FIELDS) {
      if (!(name in changes)) continue
      const value = changes[name]
      // The value it replaces goes first, whole or in pieces (the scripts delete, then set).
      if (pieced) removed.push(...allOf(field))
      else if (value === undefined) removed.push(field)
      if (value !== undefined) pushClient(set, field, pieced, encodeClient(name, value))
    }
  }
  return [removed.length, ...removed, ...set]
}

/** A decoder with its own bounded table of devices, so the records it returns share one object per device. */
export function sessionDecoder (): Decode {
  const readDevice = deviceReader()
  return (hash) => decode(Array.isArray(hash) ? byName(hash) : hash, readDevice)
}

/** A flat field/value list as fields by name, with no prototype: a field is only what the list holds. */
function byName (flat: string[]): SessionFields {
  const fields: Record<string, string> = Object.create(null)
  for (let j = 0; j < flat.length; j += 2) fields[flat[j] as string] = flat[j + 1] as string
  return fields
}

function decode (fields: SessionFields, readDevice: DeviceReader): SessionRecord {
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
    id: field('d'),
    userId: field('u'),
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
