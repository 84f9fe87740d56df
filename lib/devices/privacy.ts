import { createHmac } from 'node:crypto'
import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'
import { MAX_USER_AGENT_LENGTH } from './device.js'
import { InvalidOptionError } from '../errors.js'
import { section, type OptionNames } from '../validate.js'

/**
 * What of a client's IP address and user agent a session keeps. The devices
 * page needs neither in full: it shows the parsed device name and, with a
 * `resolveLocation` hook, a city, which a truncated address still gives.
 */

/**
 * - `'full'`: the address as the client used it.
 * - `'truncated'`: the network only, IPv4 to /24 (`203.0.113.0`), IPv6 to /48 (`2001:db8:85a3::`).
 * - `'hashed'`: a keyed hash (HMAC-SHA-256, first 16 bytes, base64url: 22 characters), so
 *   two sessions from one address can be matched without keeping the address.
 * - `'none'`: nothing.
 */
export type IpMode = 'full' | 'truncated' | 'hashed' | 'none'

export interface PrivacyOptions {
  /**
   * How a session keeps the client's IP address (`request.ip`, so Fastify's
   * `trustProxy` decides which proxy header is believed).
   * @default 'truncated'
   */
  ipMode?: IpMode
  /**
   * The secret key of `ipMode: 'hashed'`, at least 32 bytes. Keep it secret:
   * there are only 2^32 IPv4 addresses, so a hash with a known key is as good
   * as the address. Changing it makes earlier hashes unmatchable.
   */
  ipSalt?: string | Buffer
  /**
   * Keep the raw `User-Agent` string in the session after parsing it. The
   * devices page needs only the parsed device, and the raw string is both
   * identifying and the largest field of a session.
   * @default false
   */
  keepUserAgent?: boolean
}

/** The privacy options after validation; frozen. */
export interface PrivacyPolicy {
  readonly ipMode: IpMode
  readonly keepUserAgent: boolean
  /** The IP address as the session may keep it; `undefined` for `'none'` or when `ip` is not an IP address. */
  ip: (ip: string | undefined) => string | undefined
  /** The user agent as the session may keep it (cut to 512 characters, interned); `undefined` when dropped. */
  userAgent: (userAgent: string | undefined) => string | undefined
}

const DEFAULT_IP_MODE: IpMode = 'truncated'
const DEFAULT_KEEP_USER_AGENT = false
const MIN_SALT_BYTES = 32
/** Bytes of the HMAC kept: 128 bits, far beyond any collision among real addresses. */
const HASH_BYTES = 16
/** Distinct raw user agents interned per policy. */
const USER_AGENT_CACHE_SIZE = 5000
const PRIVACY_OPTION_NAMES: OptionNames<PrivacyOptions> = { ipMode: true, ipSalt: true, keepUserAgent: true }
const IP_MODES: ReadonlySet<string> = new Set<IpMode>(['full', 'truncated', 'hashed', 'none'])

/**
 * Validates privacy options and fills in defaults. Throws
 * `FST_SESSION_GUARD_INVALID_OPTION` naming the option under `prefix`.
 */
export function createPrivacyPolicy (value?: PrivacyOptions, prefix = 'privacy'): PrivacyPolicy {
  const options = section(value, PRIVACY_OPTION_NAMES, prefix)
  const ipMode = options.ipMode ?? DEFAULT_IP_MODE
  if (!IP_MODES.has(ipMode)) {
    throw new InvalidOptionError(`${prefix}.ipMode`, `must be 'full', 'truncated', 'hashed' or 'none', got ${String(ipMode)}`)
  }
  const keep = options.keepUserAgent ?? DEFAULT_KEEP_USER_AGENT
  if (typeof keep !== 'boolean') {
    throw new InvalidOptionError(`${prefix}.keepUserAgent`, 'must be a boolean')
  }
  let ip: (ip: string | undefined) => string | undefined
  if (ipMode === 'hashed') {
    const salt = options.ipSalt
    if ((typeof salt !== 'string' && !Buffer.isBuffer(salt)) || Buffer.byteLength(salt) < MIN_SALT_BYTES) {
      throw new InvalidOptionError(`${prefix}.ipSalt`, `must be a secret string or Buffer of at least ${MIN_SALT_BYTES} bytes with ipMode 'hashed'`)
    }
    const key = Buffer.from(salt)
    ip = (address) => address === undefined ? undefined : hashIp(address, key)
  } else if (ipMode === 'truncated') {
    ip = (address) => address === undefined ? undefined : truncateIp(address)
  } else if (ipMode === 'full') {
    ip = (address) => address === undefined ? undefined : normalizeIp(address)
  } else {
    ip = () => undefined
  }

  const interned = keep ? new LRUCache<string, string>({ max: USER_AGENT_CACHE_SIZE }) : undefined
  function userAgent (value: string | undefined): string | undefined {
    return interned === undefined ? undefined : keepUserAgent(value, interned)
  }

  return Object.freeze({ ipMode, keepUserAgent: keep, ip, userAgent })
}

/**
 * The user agent to keep: cut to 512 characters, and with `intern`, the one
 * string already held for the same value, so sessions from one browser share it.
 */
export function keepUserAgent (userAgent: string | undefined, intern?: LRUCache<string, string>): string | undefined {
  if (userAgent === undefined || userAgent === '') return undefined
  const value = userAgent.length > MAX_USER_AGENT_LENGTH ? userAgent.slice(0, MAX_USER_AGENT_LENGTH) : userAgent
  if (intern === undefined) return value
  const held = intern.get(value)
  if (held !== undefined) return held
  intern.set(value, value)
  return value
}

/**
 * An IP address in one canonical form: IPv4 dotted, IPv6 per RFC 5952
 * (lower case, shortest, `::` for the longest zero run), an IPv4-mapped IPv6
 * address (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 clients)
 * as plain IPv4, and without any zone id (`%eth0`). `undefined` when `ip` is
 * not an IP address (a proxy header can carry anything).
 */
export function normalizeIp (ip: string): string | undefined {
  const parsed = parseIp(ip)
  if (parsed === undefined) return undefined
  return parsed.family === 4 ? parsed.text : formatIpv6(parsed.groups)
}

/** The /24 network of an IPv4 address, the /48 of an IPv6 one, in canonical form. */
export function truncateIp (ip: string): string | undefined {
  const parsed = parseIp(ip)
  if (parsed === undefined) return undefined
  if (parsed.family === 4) return parsed.text.slice(0, parsed.text.lastIndexOf('.')) + '.0'
  const groups = parsed.groups.slice(0, 3)
  while (groups.length < 8) groups.push(0)
  return formatIpv6(groups)
}

/**
 * HMAC-SHA-256 of the canonical address under `key`, first 16 bytes as
 * base64url (22 characters). The same address in any notation gives the same hash.
 */
export function hashIp (ip: string, key: Buffer): string | undefined {
  const canonical = normalizeIp(ip)
  if (canonical === undefined) return undefined
  return createHmac('sha256', key).update(canonical).digest().toString('base64url', 0, HASH_BYTES)
}

type ParsedIp = { family: 4, text: string } | { family: 6, groups: number[] }

function parseIp (input: string): ParsedIp | undefined {
  const family = isIP(input)
  if (family === 4) return { family: 4, text: input }
  if (family !== 6) return undefined
  const zone = input.indexOf('%')
  const address = (zone === -1 ? input : input.slice(0, zone)).toLowerCase()
  const groups = ipv6Groups(address)
  // ::ffff:a.b.c.d is an IPv4 client seen through an IPv6 socket.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    const high = groups[6] as number
    const low = groups[7] as number
    return { family: 4, text: `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}` }
  }
  return { family: 6, groups }
}

/** The eight 16-bit groups of an IPv6 address that `isIP` has already accepted. */
function ipv6Groups (address: string): number[] {
  const split = (part: string): number[] => {
    if (part === '') return []
    const out: number[] = []
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        // An embedded IPv4 tail (::ffff:192.0.2.1, 64:ff9b::192.0.2.33) fills two groups.
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number]
        out.push((a << 8) | b, (c << 8) | d)
      } else {
        out.push(parseInt(piece, 16))
      }
    }
    return out
  }
  const gap = address.indexOf('::')
  if (gap === -1) return split(address)
  const head = split(address.slice(0, gap))
  const tail = split(address.slice(gap + 2))
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run of two or more zero groups as `::`. */
function formatIpv6 (groups: number[]): string {
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = groups.map((group) => group.toString(16))
  if (bestStart === -1) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}
