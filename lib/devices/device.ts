import { isbot } from 'isbot'
import { LRUCache } from 'lru-cache'
import { parseItem, parseList, Token } from 'structured-headers'
import UAParser from 'ua-parser-js'
import { InvalidOptionError } from '../errors.js'
import { shown } from '../validate.js'

/**
 * Device metadata from request headers: the User-Agent string, read with
 * `ua-parser-js` 1.x, corrected by User-Agent Client Hints where the browser
 * sends them (a Structured Field list, read with `structured-headers`); robots
 * are recognised by `isbot`.
 *
 * Why ua-parser-js 1.x: it is MIT, still gets its pattern updates as patch
 * releases, and names device models ("SM-S918B", "Pixel 8") that the devices
 * page shows. The 2.x line is AGPL, which would bind every app using this
 * plugin. `bowser` (MIT) names no models and names browsers differently;
 * `my-ua-parser` (an MIT fork of 2.x) has had no release since 2024.
 *
 * Results are interned: the same headers give the same frozen object, so the
 * many sessions opened from one kind of device share one `DeviceInfo`.
 */

export type DeviceType = 'desktop' | 'mobile' | 'tablet' | 'bot' | 'unknown'

/** A browser or operating system. Both fields are always present, possibly `undefined`. */
export interface NameVersion {
  readonly name: string | undefined
  readonly version: string | undefined
}

/** What the devices page shows about a session's device. Frozen and shared: never mutate it. */
export interface DeviceInfo {
  readonly type: DeviceType
  /** For people: "Firefox on Windows", "Safari on iPhone", "curl", "Unknown device". */
  readonly name: string
  readonly browser: NameVersion
  readonly os: NameVersion
  /** Hardware model when known: "Pixel 8", "SM-S918B", "iPhone", "iPad", "Macintosh". */
  readonly model: string | undefined
}

/** Request headers as Node gives them (lower-case names), e.g. `request.headers`. */
export type DeviceHeaders = Readonly<Record<string, string | string[] | undefined>>

export interface DeviceParserOptions {
  /**
   * Most distinct header combinations kept parsed. Bounded so that clients
   * sending random user agents cannot grow memory; each entry costs well under 1 KB.
   * @default 5000
   */
  cacheSize?: number
}

export interface DeviceParser {
  /** The device described by `headers`; the same frozen object for the same headers while cached. */
  parse: (headers: DeviceHeaders) => DeviceInfo
  /** How many parsed devices the cache holds. */
  readonly size: number
}

const DEFAULT_CACHE_SIZE = 5000
/** Longer user agents are cut to this length before parsing (ua-parser-js itself reads only 500). */
export const MAX_USER_AGENT_LENGTH = 512
/** A client hint longer than this is ignored, as if not sent. */
export const MAX_HINT_LENGTH = 256

const UNKNOWN: DeviceInfo = freezeDevice('unknown', 'Unknown device', undefined, undefined, undefined, undefined, undefined)

/** A parser with its own cache. Most apps use the shared `parseDevice`. */
export function createDeviceParser (options: DeviceParserOptions = {}): DeviceParser {
  const max = options.cacheSize ?? DEFAULT_CACHE_SIZE
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new InvalidOptionError('cacheSize', `must be a positive integer, got ${shown(max)}`)
  }
  const cache = new LRUCache<string, DeviceInfo>({ max })

  function parse (headers: DeviceHeaders): DeviceInfo {
    let ua = header(headers, 'user-agent', Infinity)
    if (ua !== undefined && ua.length > MAX_USER_AGENT_LENGTH) ua = ua.slice(0, MAX_USER_AGENT_LENGTH)
    const brands = header(headers, 'sec-ch-ua', MAX_HINT_LENGTH)
    const mobile = header(headers, 'sec-ch-ua-mobile', MAX_HINT_LENGTH)
    const platform = header(headers, 'sec-ch-ua-platform', MAX_HINT_LENGTH)
    const platformVersion = header(headers, 'sec-ch-ua-platform-version', MAX_HINT_LENGTH)
    const fullVersionList = header(headers, 'sec-ch-ua-full-version-list', MAX_HINT_LENGTH)
    const model = header(headers, 'sec-ch-ua-model', MAX_HINT_LENGTH)
    const noHints = brands === undefined && mobile === undefined && platform === undefined &&
      platformVersion === undefined && fullVersionList === undefined && model === undefined
    if (noHints && (ua === undefined || ua === '')) return UNKNOWN

    // Without hints (Firefox, Safari) the user agent alone is the key: no string is built on a hit.
    const key = noHints
      ? ua as string
      : `${ua ?? ''}\n${brands ?? ''}\n${mobile ?? ''}\n${platform ?? ''}\n${platformVersion ?? ''}\n${fullVersionList ?? ''}\n${model ?? ''}`
    let device = cache.get(key)
    if (device === undefined) {
      device = describe(ua ?? '', { brands, mobile, platform, platformVersion, fullVersionList, model })
      cache.set(key, device)
    }
    return device
  }

  return {
    parse,
    get size () { return cache.size }
  }
}

const shared = createDeviceParser()

/**
 * The device described by request headers, from the process-wide cache:
 * `parseDevice(request.headers)`. Never throws; oversized or malformed headers
 * give less information, not an error.
 */
export const parseDevice: (headers: DeviceHeaders) => DeviceInfo = shared.parse

interface Hints {
  brands: string | undefined
  mobile: string | undefined
  platform: string | undefined
  platformVersion: string | undefined
  fullVersionList: string | undefined
  model: string | undefined
}

function header (headers: DeviceHeaders, name: string, maxLength: number): string | undefined {
  const value = headers[name]
  // Node joins repeated headers into one string; an array here comes from a
  // hand-made headers object and is ignored rather than guessed at.
  if (typeof value !== 'string' || value.length > maxLength || hasControlCharacter(value)) return undefined
  return value
}

// eslint-disable-next-line no-control-regex -- the point: the characters no header field value may hold
const CONTROL = /[\0-\x08\n-\x1f\x7f]/

/**
 * Whether a header value holds a control character (but the tab) or DEL,
 * which no field value may (RFC 9110). Node's parser refuses them, but not with
 * `insecureHTTPParser` nor in `inject()`; such a header is malformed and read
 * as absent, so U+0000 (which PostgreSQL cannot store) never reaches a device
 * or a kept user agent.
 */
export function hasControlCharacter (value: string): boolean {
  return CONTROL.test(value)
}

function describe (ua: string, hints: Hints): DeviceInfo {
  const result = UAParser(ua)
  let browserName = browserDisplayName(result.browser.name)
  let browserVersion = result.browser.version
  let osName = osDisplayName(result.os.name)
  let osVersion = result.os.version
  let model = result.device.model
  let type = uaType(result.device.type, osName, browserName)

  // Client hints are sent only by Chromium-based browsers, which freeze the
  // user agent (Windows NT 10.0 for Windows 11, macOS 10_15_7, Android 10; K,
  // Chrome/131.0.0.0): where a hint is present it replaces the frozen value.
  const brand = pickBrand(hints.fullVersionList) ?? pickBrand(hints.brands)
  // A browser that sends only the generic "Chromium" brand (Vivaldi does) is
  // better named by its user agent, unless that says just Chrome.
  const generic = brand?.name === 'Chromium' && browserName !== undefined && browserName !== 'Chrome'
  if (brand !== undefined && !generic) {
    browserName = browserDisplayName(brand.name)
    browserVersion = brand.version
  }
  const platform = sfString(hints.platform)
  if (platform !== undefined && platform !== 'Unknown') {
    osName = osDisplayName(platform)
    osVersion = platformVersion(osName, sfString(hints.platformVersion))
  }
  if (hints.mobile === '?1') type = 'mobile'
  // A Chromium browser on an Android tablet says "not mobile" (it asks for desktop layouts).
  else if (hints.mobile === '?0') type = osName === 'Android' ? 'tablet' : 'desktop'
  const hintModel = sfString(hints.model)
  if (hintModel !== undefined) model = hintModel
  // "K" is the placeholder model of the reduced Android user agent, not a device.
  if (model === 'K') model = undefined

  const bot = botToken(ua) ?? (brand?.name === 'HeadlessChrome' ? { name: 'HeadlessChrome', version: brand.version } : undefined)
  if (bot !== undefined) {
    return freezeDevice('bot', bot.name, bot.name, bot.version, osName, osVersion, model)
  }
  if (browserName === undefined) {
    // An app's own client ("MyApp/1.2.3 (iPhone; iOS 17.1)") is named by its product token.
    const product = productToken(ua)
    if (product !== undefined) {
      browserName = product.name
      browserVersion = product.version
    } else if (osName === undefined) {
      return UNKNOWN
    }
  }
  return freezeDevice(type, deviceName(browserName, osName, model), browserName, browserVersion, osName, osVersion, model)
}

function freezeDevice (
  type: DeviceType, name: string,
  browserName: string | undefined, browserVersion: string | undefined,
  osName: string | undefined, osVersion: string | undefined,
  model: string | undefined
): DeviceInfo {
  // Always the same property order, so every DeviceInfo shares one hidden class.
  return Object.freeze({
    type,
    name,
    browser: Object.freeze({ name: browserName, version: browserVersion }),
    os: Object.freeze({ name: osName, version: osVersion }),
    model
  })
}

const DESKTOP_OS = new Set([
  'Windows', 'macOS', 'Linux', 'ChromeOS', 'Ubuntu', 'Debian', 'Fedora', 'Mint', 'Arch', 'Gentoo', 'SUSE',
  'openSUSE', 'Red Hat', 'CentOS', 'Manjaro', 'FreeBSD', 'OpenBSD', 'NetBSD', 'Solaris', 'Unix'
])

function uaType (deviceType: string | undefined, osName: string | undefined, browserName: string | undefined): DeviceType {
  if (deviceType === 'mobile' || deviceType === 'wearable') return 'mobile'
  if (deviceType === 'tablet') return 'tablet'
  // TVs, consoles and embedded devices have no place of their own on the devices page.
  if (deviceType !== undefined) return 'unknown'
  if (osName !== undefined && DESKTOP_OS.has(osName)) return 'desktop'
  if (osName === undefined && browserName !== undefined) return 'desktop'
  return 'unknown'
}

const BROWSER_NAMES: Readonly<Record<string, string>> = {
  'Mobile Safari': 'Safari',
  'Google Chrome': 'Chrome',
  'Microsoft Edge': 'Edge',
  'Samsung Browser': 'Samsung Internet',
  'Chrome WebView': 'Android WebView',
  YaBrowser: 'Yandex',
  'Opera Touch': 'Opera',
  'Opera Mobile': 'Opera',
  GSA: 'Google app',
  'Mobile Firefox': 'Firefox'
}

function browserDisplayName (name: string | undefined): string | undefined {
  if (name === undefined) return undefined
  return BROWSER_NAMES[name] ?? name
}

const OS_NAMES: Readonly<Record<string, string>> = {
  'Mac OS': 'macOS',
  'Chromium OS': 'ChromeOS',
  'Chrome OS': 'ChromeOS'
}

function osDisplayName (name: string | undefined): string | undefined {
  if (name === undefined) return undefined
  return OS_NAMES[name] ?? name
}

function deviceName (browser: string | undefined, os: string | undefined, model: string | undefined): string {
  let where = os
  if (os === 'iOS') where = model === 'iPad' ? 'iPad' : model === 'iPod touch' ? 'iPod touch' : 'iPhone'
  if (browser === undefined) return `${where as string} device`
  if (where === undefined) return browser
  return `${browser} on ${where}`
}

/**
 * The OS version from `Sec-CH-UA-Platform-Version`. On Windows it is not the
 * marketing version: 13 and above is Windows 11, 1 to 10 is Windows 10, 0.x
 * is 7, 8 or 8.1.
 */
function platformVersion (os: string | undefined, version: string | undefined): string | undefined {
  if (version === undefined || !/^\d+(?:\.\d+)*$/.test(version)) return undefined
  if (os === 'Windows') {
    const [major, minor] = version.split('.').map(Number) as [number, number | undefined]
    if (major >= 13) return '11'
    if (major >= 1) return '10'
    return minor === 1 ? '7' : minor === 2 ? '8' : minor === 3 ? '8.1' : undefined
  }
  // "14.0.0" reads better as "14"; "14.4.1" stays.
  return version.replace(/(?:\.0)+$/, '')
}

// GREASE brands: "Not A(Brand", "Not)A;Brand", "Not/A)Brand", " Not;A Brand"… (any
// punctuation around "Not", "A", "Brand"), sent to keep servers from matching exact lists.
const GREASE = /^[^a-z]*not[^a-z]*a[^a-z]*brand[^a-z]*$/i

interface Brand { name: string, version: string | undefined }

/**
 * The most specific brand of a `Sec-CH-UA` list: "Google Chrome", "Microsoft
 * Edge", "Opera", "Brave" rather than the "Chromium" they all also send.
 */
function pickBrand (value: string | undefined): Brand | undefined {
  if (value === undefined) return undefined
  const brands = parseBrandList(value)
  if (brands === undefined) return undefined
  let chromium: Brand | undefined
  for (const brand of brands) {
    if (GREASE.test(brand.name)) continue
    if (brand.name === 'Chromium') chromium = brand
    else return brand
  }
  return chromium
}

/**
 * The brands of a `Sec-CH-UA` or `Sec-CH-UA-Full-Version-List` Structured Field
 * list (RFC 8941): `"Brand";v="123", "Other";v="4.5.6"`, read by `structured-headers`.
 * Items that are not strings are skipped; a malformed list gives `undefined`.
 */
function parseBrandList (input: string): Brand[] | undefined {
  let list: ReturnType<typeof parseList>
  try {
    // An HTTP parser drops the whitespace around a field value (RFC 9110, 5.5);
    // a hand-made headers object may keep it, which RFC 8941 parsing refuses.
    list = parseList(input.trim())
  } catch {
    return undefined
  }
  const brands: Brand[] = []
  for (const [item, params] of list) {
    const name = typeof item === 'string' ? text(item) : undefined
    if (name === undefined) continue
    // `v` is a string in every browser; an integer or a token (`v=42`) reads the same.
    const version = params.get('v')
    brands.push({
      name,
      version: typeof version === 'string' || typeof version === 'number' || version instanceof Token ? text(String(version)) : undefined
    })
  }
  return brands
}

/** The value of a single-string hint (`Sec-CH-UA-Platform: "Windows"`), unquoted. */
function sfString (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  try {
    const [item] = parseItem(value.trim())
    return typeof item === 'string' ? text(item) : undefined
  } catch {
    return undefined
  }
}

/** A hint's text without surrounding spaces; blank text names nothing and reads as absent. */
function text (value: string): string | undefined {
  const trimmed = value.trim()
  return trimmed === '' ? undefined : trimmed
}

// ua-parser-js 1.x names browsers, not robots (Googlebot and curl come out with no
// browser at all, bingbot as Chrome): `isbot` decides what is a robot. It has no
// names, so these two patterns find the name to show: a scripted HTTP client in its
// usual spelling, or the crawler word ("Googlebot", "Slackbot-LinkExpanding").
const CRAWLER = /(?:^|[\s;(])([a-z][\w!.-]*?(?:bot|crawler|spider|slurp|externalhit)[a-z0-9-]*)(?:\/([\w.~-]+))?/i
const CLIENT = /(?:^|\s)(curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|node-fetch|undici|axios|libwww-perl|httpie|postmanruntime|insomnia|scrapy|headlesschrome|phantomjs|java|apache-httpclient)\/([\w.-]+)/i
// isbot counts okhttp as a robot, but it is the default user agent of Android apps
// that set none: a signed-in session from one is a person on a phone, not a crawler.
const APP_HTTP_LIBRARY = /^okhttp\//i
// HTTP clients keep their usual spelling ("curl", "python-requests"), however the UA writes them.
const CLIENT_NAMES: Readonly<Record<string, string>> = {
  wget: 'Wget',
  headlesschrome: 'HeadlessChrome',
  phantomjs: 'PhantomJS',
  postmanruntime: 'PostmanRuntime',
  java: 'Java',
  'apache-httpclient': 'Apache-HttpClient',
  'go-http-client': 'Go-http-client'
}

function botToken (ua: string): Brand | undefined {
  if (!isbot(ua) || APP_HTTP_LIBRARY.test(ua)) return undefined
  const client = CLIENT.exec(ua)
  if (client !== null) {
    const lower = (client[1] as string).toLowerCase()
    return { name: CLIENT_NAMES[lower] ?? lower, version: client[2] }
  }
  const crawler = CRAWLER.exec(ua)
  if (crawler !== null) return { name: crawler[1] as string, version: crawler[2] }
  // A robot without a crawler word (WhatsApp's link previews: "WhatsApp/2.23.20.0 A") by its
  // product. isbot's catch-all (a user agent with no comment) also takes "asdf" and a bare
  // "Mozilla/5.0": with no product to name them by, they stay unknown devices.
  return productToken(ua)
}

/** The leading `Product/1.2` of a user agent nothing else recognised ("MyApp/1.2.3 (…)"). */
function productToken (ua: string): Brand | undefined {
  const match = /^([A-Za-z][\w.-]{0,31})\/([\w.-]{1,32})/.exec(ua)
  if (match === null || match[1] === 'Mozilla') return undefined
  return { name: match[1] as string, version: match[2] }
}
