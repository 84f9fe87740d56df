import type { Location } from '../lib/index.js'

/**
 * A stand-in geolocation for the example: the three documentation address
 * ranges of RFC 5737 placed in three cities, so impossible travel can be tried
 * from one machine. A real app uses a database (see docs/devices.md for
 * `@maxmind/geoip2-node`).
 */
const PLACES: Array<[prefix: string, location: Location]> = [
  ['192.0.2.', { country: 'US', city: 'New York', latitude: 40.7128, longitude: -74.006 }],
  ['198.51.100.', { country: 'AU', city: 'Sydney', latitude: -33.8688, longitude: 151.2093 }],
  ['203.0.113.', { country: 'FR', city: 'Paris', latitude: 48.8566, longitude: 2.3522 }]
]

export function demoLocation (ip: string): Location | undefined {
  return PLACES.find(([prefix]) => ip.startsWith(prefix))?.[1]
}
