import { LRUCache } from 'lru-cache'
import type { DeviceInfo } from '../devices/device.js'

/** Distinct devices kept decoded, so sessions read back share one frozen object per device. */
const DEVICE_CACHE_MAX = 5000

/** Reads a device stored as JSON back into one frozen object per distinct JSON text. */
export type DeviceReader = (json: string) => DeviceInfo

/**
 * A reader with its own bounded table of devices, so the records a store
 * returns share one frozen object per device (like `parseDevice`).
 */
export function deviceReader (): DeviceReader {
  const devices = new LRUCache<string, DeviceInfo>({ max: DEVICE_CACHE_MAX })
  return (json) => {
    const known = devices.get(json)
    if (known !== undefined) return known
    const held = JSON.parse(json) as DeviceInfo
    // Every field present, as DeviceInfo promises, even those JSON left out for being undefined.
    const device: DeviceInfo = Object.freeze({
      type: held.type,
      name: held.name,
      browser: Object.freeze({ name: held.browser.name, version: held.browser.version }),
      os: Object.freeze({ name: held.os.name, version: held.os.version }),
      model: held.model
    })
    devices.set(json, device)
    return device
  }
}
