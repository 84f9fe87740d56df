import type { DeviceType } from './devices/device.js'
import { InvalidOptionError } from './errors.js'
import { deviceTypeOf, type SessionRecord } from './session.js'
import type { DeviceTypeLimit, SessionLimit } from './stores/store.js'
import { section, shown, type OptionNames } from './validate.js'

/** The limit of one device type: `deviceTypeLimits: { mobile: { max: 1, onLimit: 'reject' } }`. */
export interface DeviceTypeLimitOptions {
  /** Most live sessions of this device type per user (>= 1, at most `maxSessionsPerUser`). */
  max: number
  /**
   * At this type's limit, `'evict-oldest'` revokes the user's least recently
   * active session *of this type*; `'reject'` refuses the new login with a 409
   * whose ticket offers only the sessions of this type.
   * @default onSessionLimit
   */
  onLimit?: 'evict-oldest' | 'reject'
}

/**
 * Limits per device type (as the User-Agent and client hints give it; a
 * session without a device is `'unknown'`), each under the total
 * `maxSessionsPerUser`, which still applies. A type without one is limited by
 * the total only.
 */
export type DeviceTypeLimitsOptions = Partial<Record<DeviceType, DeviceTypeLimitOptions>>

const DEVICE_TYPES: OptionNames<Record<DeviceType, unknown>> = { desktop: true, mobile: true, tablet: true, bot: true, unknown: true }
const LIMIT_OPTION_NAMES: OptionNames<DeviceTypeLimitOptions> = { max: true, onLimit: true }
const PATH = 'deviceTypeLimits'

/** The limits per device type after validation: each type's own, with its device type. */
export type DeviceTypeLimits = Readonly<Partial<Record<DeviceType, DeviceTypeLimit>>>

/**
 * Validates `deviceTypeLimits` against the total limit: a known type, a
 * positive integer `max` no higher than the total's, and an `onLimit` (the
 * total's when left out).
 */
export function parseDeviceTypeLimits (value: DeviceTypeLimitsOptions | undefined, total: SessionLimit): DeviceTypeLimits {
  const limits: Partial<Record<DeviceType, DeviceTypeLimit>> = {}
  if (typeof value === 'object' && value !== null) {
    const unknown = Object.keys(value).find((key) => !Object.hasOwn(DEVICE_TYPES, key))
    if (unknown !== undefined) throw new InvalidOptionError(`${PATH}.${unknown}`, `is not a device type (${Object.keys(DEVICE_TYPES).join(', ')})`)
  }
  for (const [type, options] of Object.entries(section(value, DEVICE_TYPES, PATH)) as Array<[DeviceType, DeviceTypeLimitOptions]>) {
    const path = `${PATH}.${type}`
    if (options === undefined) continue
    const { max, onLimit = total.onLimit } = section(options, LIMIT_OPTION_NAMES, path)
    if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionError(`${path}.max`, `must be a positive integer, got ${shown(max)}`)
    if (max > total.max) throw new InvalidOptionError(`${path}.max`, `must be at most maxSessionsPerUser (${total.max}), got ${max}`)
    if (onLimit !== 'evict-oldest' && onLimit !== 'reject') {
      throw new InvalidOptionError(`${path}.onLimit`, `must be 'evict-oldest' or 'reject', got ${shown(onLimit)}`)
    }
    limits[type] = Object.freeze({ type, max, onLimit })
  }
  return Object.freeze(limits)
}

/** The limit a new session is created under: the total, with its device type's own when it has one. */
export function limitFor (session: SessionRecord, total: SessionLimit, byType: DeviceTypeLimits): SessionLimit {
  const typed = byType[deviceTypeOf(session)]
  return typed === undefined ? total : { ...total, deviceType: typed }
}
