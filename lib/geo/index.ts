import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { Reader, type Response } from 'mmdb-lib'
import { InvalidOptionError } from '../errors.js'
import type { Location } from '../session.js'
import { section, type OptionNames } from '../validate.js'

/**
 * `fastify-session-guard/geo`: a `resolveLocation` built from MaxMind DB
 * (`.mmdb`) files, read with `mmdb-lib` (an optional peer dependency: install
 * it to use this entry; the main entry never loads it).
 *
 * ```ts
 * import { mmdbLocation } from 'fastify-session-guard/geo'
 * const resolveLocation = await mmdbLocation(['/var/lib/GeoIP/GeoLite2-City.mmdb'])
 * await app.register(sessionGuard, { secret, resolveLocation })
 * ```
 */

/** An MMDB database: a file path, or its bytes. */
export type MmdbSource = string | Buffer

export interface MmdbLocationOptions {
  /**
   * Keep the latitude and longitude of the place (rounded to 4 decimals, about
   * 10 m). The `impossible_travel` rule needs them; without them a session
   * records a city and a country only.
   * @default true
   */
  coordinates?: boolean
  /**
   * The language of the city name in databases that carry several (MaxMind's
   * GeoIP2 and GeoLite2 layout: `city.names.en`); English when that language is missing.
   * @default 'en'
   */
  language?: string
}

/** `resolveLocation` as this entry builds it: synchronous, never throws. */
export type MmdbLocationResolver = (ip: string) => Location | undefined

const DEFAULT_LANGUAGE = 'en'
const COORDINATE_SCALE = 1e4
const MMDB_OPTION_NAMES: OptionNames<MmdbLocationOptions> = { coordinates: true, language: true }

/**
 * Opens the databases (read whole into memory, once) and returns the
 * `resolveLocation` function that looks addresses up in them. Several files
 * serve, for instance, one IPv4 and one IPv6 database: an address is looked up
 * in the databases that can hold it, in the order given, and the first that
 * knows it answers. Private, reserved and unknown addresses give `undefined`.
 *
 * Two record layouts are read: MaxMind's GeoIP2 City and Country (GeoLite2,
 * DB-IP's and others' databases in that layout) and the flat layout of the
 * ip-location-db packages (`country_code`, `city`, `latitude`, `longitude`).
 *
 * Throws `FST_SESSION_GUARD_INVALID_OPTION` for a file that cannot be read or
 * is not an MMDB database, or a bad option.
 */
export async function mmdbLocation (databases: MmdbSource | readonly MmdbSource[], options?: MmdbLocationOptions): Promise<MmdbLocationResolver> {
  const sources = Array.isArray(databases) ? databases as readonly MmdbSource[] : [databases as MmdbSource]
  const parsed = section(options, MMDB_OPTION_NAMES, 'geo')
  const coordinates = parsed.coordinates ?? true
  if (typeof coordinates !== 'boolean') throw new InvalidOptionError('geo.coordinates', 'must be a boolean')
  const language = parsed.language ?? DEFAULT_LANGUAGE
  if (typeof language !== 'string' || language === '') throw new InvalidOptionError('geo.language', 'must be a language code such as \'en\'')
  if (sources.length === 0) throw new InvalidOptionError('geo.databases', 'must name at least one MMDB file')

  const readers = await Promise.all(sources.map(async (source, i) => await open(source, i)))
  // An IPv4 database walks an IPv6 address's first 32 bits as if they were an IPv4
  // address, and answers a wrong place: an IPv6 address goes to IPv6 databases only.
  const forIpv4 = readers
  const forIpv6 = readers.filter((reader) => reader.metadata.ipVersion === 6)

  return function resolveLocation (ip: string): Location | undefined {
    // net.isIP first: ipaddr.js also takes inet_aton's classful forms ("127.1").
    const family = typeof ip === 'string' ? isIP(ip) : 0
    if (family === 0) return undefined
    // Dotted IPv4 as net.isIP accepts it is already canonical; IPv6 is unwrapped
    // (::ffff:a.b.c.d is an IPv4 client) and loses its zone id.
    let text = ip
    let v4 = family === 4
    if (!v4) {
      const address = ipaddr.process(ip)
      v4 = address.kind() === 'ipv4'
      text = v4 ? address.toString() : new ipaddr.IPv6((address as ipaddr.IPv6).parts).toString()
    }
    for (const reader of v4 ? forIpv4 : forIpv6) {
      // mmdb-lib types only MaxMind's own layouts: the record is read field by field, as unknown.
      const location = toLocation(reader.get(text) as MmdbRecord | null, language, coordinates)
      if (location !== undefined) return location
    }
    return undefined
  }
}

async function open (source: MmdbSource, index: number): Promise<Reader<Response>> {
  const name = `geo.databases[${index}]`
  let bytes: Buffer
  if (Buffer.isBuffer(source)) {
    bytes = source
  } else if (typeof source === 'string') {
    try {
      bytes = await readFile(source)
    } catch (err) {
      throw new InvalidOptionError(name, `cannot be read: ${(err as Error).message}`)
    }
  } else {
    throw new InvalidOptionError(name, 'must be a file path or a Buffer')
  }
  try {
    return new Reader<Response>(bytes)
  } catch {
    throw new InvalidOptionError(name, `is not an MMDB database${typeof source === 'string' ? `: ${source}` : ''}`)
  }
}

/** The fields read from either layout, each checked before use; anything else in a record is ignored. */
interface MmdbRecord {
  // GeoIP2 layout
  city?: { names?: Record<string, unknown> } | string
  country?: { iso_code?: unknown }
  location?: { latitude?: unknown, longitude?: unknown }
  // ip-location-db layout
  country_code?: unknown
  latitude?: unknown
  longitude?: unknown
}

function toLocation (record: MmdbRecord | null, language: string, coordinates: boolean): Location | undefined {
  if (record === null || typeof record !== 'object') return undefined
  const flat = typeof record.city === 'string' || 'country_code' in record
  const country = flat ? record.country_code : record.country?.iso_code
  const city = typeof record.city === 'string' ? record.city : record.city?.names?.[language] ?? record.city?.names?.[DEFAULT_LANGUAGE]
  const latitude = flat ? record.latitude : record.location?.latitude
  const longitude = flat ? record.longitude : record.location?.longitude
  const location: { -readonly [K in keyof Location]: Location[K] } = {}
  if (typeof country === 'string' && country !== '') location.country = country
  if (typeof city === 'string' && city !== '') location.city = city
  if (coordinates && isCoordinate(latitude, 90) && isCoordinate(longitude, 180)) {
    location.latitude = round(latitude)
    location.longitude = round(longitude)
  }
  return Object.keys(location).length === 0 ? undefined : location
}

function isCoordinate (value: unknown, limit: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= limit
}

// Float32 noise ("48.85749816894531") rounded off: 4 decimals is about 10 m, finer than any city.
function round (value: number): number {
  return Math.round(value * COORDINATE_SCALE) / COORDINATE_SCALE
}
