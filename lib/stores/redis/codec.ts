import type { Location, SessionRecord, TravelAnchor } from '../../session.js'
import { deviceReader, type DeviceReader } from '../device-json.js'
import type { Activity, SessionChanges } from '../store.js'
import type { Arg } from './connection.js'

/** A session hash (a flat field/value list, as HGETALL and the scripts give it) read back as a record. */
export type Decode = (flat: string[]) => SessionRecord

/** The client fields of a record and their hash fields (see `scripts.ts`). */
const CLIENT_FIELDS = [['device', 'v'], ['ip', 'p'], ['userAgent', 'g'], ['location', 'o'], ['flags', 'x'], ['travelAnchor', 'y']] as const

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
  for (const [name, field] of CLIENT_FIELDS) {
    const value = session[name]
    if (value !== undefined) fields.push(field, encodeClient(name, value))
  }
  return fields
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
  return (flat) => decode(flat, readDevice)
}

function decode (flat: string[], readDevice: DeviceReader): SessionRecord {
  const map = new Map<string, string>()
  for (let j = 0; j < flat.length; j += 2) map.set(flat[j] as string, flat[j + 1] as string)
  const field = (name: string): string => map.get(name) as string
  const claims = map.get('m')
  const hash = map.get('h')
  const nextHash = map.get('n')
  const device = map.get('v')
  const ip = map.get('p')
  const userAgent = map.get('g')
  const location = map.get('o')
  const flags = map.get('x')
  const travelAnchor = map.get('y')
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
