import { createHmac } from 'node:crypto'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { LRUCache } from 'lru-cache'
import { hasControlCharacter, MAX_USER_AGENT_LENGTH } from './device.js'
import { InvalidOptionError } from '../errors.js'
import { section, shown, type OptionNames } from '../validate.js'

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
/** The network `'truncated'` keeps: IPv4 /24, IPv6 /48. */
const IPV4_NETWORK_BITS = 24
const IPV6_NETWORK_BITS = 48
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
    throw new InvalidOptionError(`${prefix}.ipMode`, `must be 'full', 'truncated', 'hashed' or 'none', got ${shown(ipMode)}`)
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
 * The user agent to keep: none when it holds a control character (malformed),
 * else cut to 512 characters, and with `intern`, the one string already held
 * for the same value, so sessions from one browser share it.
 */
export function keepUserAgent (userAgent: string | undefined, intern?: LRUCache<string, string>): string | undefined {
  if (userAgent === undefined || userAgent === '' || hasControlCharacter(userAgent)) return undefined
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
  return parseIp(ip)?.toString()
}

/** The /24 network of an IPv4 address, the /48 of an IPv6 one, in canonical form. */
export function truncateIp (ip: string): string | undefined {
  const address = parseIp(ip)
  if (address === undefined) return undefined
  return address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${IPV4_NETWORK_BITS}`).toString()
    : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${IPV6_NETWORK_BITS}`).toString()
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

/**
 * The address, parsed by ipaddr.js, IPv4-mapped IPv6 unwrapped and the zone id
 * dropped. `net.isIP` decides first what is an address: ipaddr.js also takes the
 * classful forms of `inet_aton` (`127.1`, `0x7f.0.0.1`, `010.0.0.1` as octal), which
 * no socket reports and which would make one client's address readable two ways.
 */
function parseIp (input: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (isIP(input) === 0) return undefined
  const address = ipaddr.process(input)
  if (address.kind() === 'ipv4') return address
  // A new IPv6 from the groups alone: toString() would otherwise print the zone id back.
  return new ipaddr.IPv6((address as ipaddr.IPv6).parts)
}
