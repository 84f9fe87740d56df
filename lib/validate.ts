import { parse as parseDuration } from '@lukeed/ms'
import { InvalidOptionError } from './errors.js'

/**
 * The checks every option section uses. Each feature parses its own section
 * with these, naming the option by its full path (`'lockout.window'`), so a
 * bad value always fails registration with `FST_SESSION_GUARD_INVALID_OPTION`.
 */

/** Milliseconds, or a string such as `'15m'`, `'12h'`, `'30d'`. */
export type Duration = number | string

/** Every option name of a section, checked by the compiler against the section's type. */
export type OptionNames<T> = Readonly<Record<keyof T, true>>

// RFC 6265bis cookie-name token (also a valid header name): no separators, controls or spaces.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The section as an object (an absent one is empty). A name the section does
 * not know fails, so a misspelt option (`idleTimout`) never silently leaves a default.
 */
export function section<T extends object> (value: T | undefined, names: OptionNames<T>, path: string): T {
  if (value === undefined) return {} as T
  if (typeof value !== 'object' || value === null) throw new InvalidOptionError(path, 'must be an object')
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(names, key)) throw new InvalidOptionError(join(path, key), `is not an option of ${ownerOf(path)}`)
  }
  return value
}

/** A value as an error message shows it: a string quoted, so `'5'` reads apart from `5` and `''` shows at all. */
export function shown (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}

/** What a section's options belong to: a store factory's, or the plugin's. */
function ownerOf (path: string): string {
  const factory = /^(?:memoryStore|redisStore|postgresStore)(?=\.|$)/.exec(path)?.[0]
  return factory === undefined ? 'fastify-session-guard' : `${factory}()`
}

/** `path.name`, or `name` at the top level. */
export function join (path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`
}

export function duration (value: Duration, name: string, { allowZero = false } = {}): number {
  const ms = typeof value === 'string' ? parseDuration(value) : value
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || (ms === 0 && !allowZero)) {
    throw new InvalidOptionError(name, `must be a ${allowZero ? 'non-negative' : 'positive'} duration in ms or a string such as '15m', got ${shown(value)}`)
  }
  return ms
}

export function bool (value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'must be a boolean')
  return value
}

/** A positive integer. */
export function count (value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new InvalidOptionError(name, 'must be a positive integer')
  return value as number
}

/** A number in (0, 1]. */
export function fraction (value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new InvalidOptionError(name, 'must be a number in (0, 1]')
  return value
}

export function routePath (value: unknown, name: string): string {
  if (typeof value !== 'string' || !value.startsWith('/')) throw new InvalidOptionError(name, 'must be a path starting with "/"')
  return value
}

/** A cookie or header name (an RFC 6265bis token). */
export function isToken (value: unknown): value is string {
  return typeof value === 'string' && TOKEN.test(value)
}

export function optionalFunction<F> (value: F | undefined, name: string, shape: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw new InvalidOptionError(name, `must be a function ${shape}`)
  return value
}

/**
 * A list of origins (`refresh.allowedOrigins`, `dpop.origins`), each spelt as
 * a browser sends `Origin` and as `new URL(…).origin` reads one: compared as
 * strings, another spelling would never match, and "null" is any sandboxed page.
 */
export function origins (value: unknown, name: string): string[] {
  if (!Array.isArray(value) || !value.every((origin) => typeof origin === 'string')) {
    throw new InvalidOptionError(name, 'must be an array of origins such as "https://app.example.com"')
  }
  for (const [i, origin] of value.entries()) {
    if (serializedOrigin(origin) !== origin) {
      throw new InvalidOptionError(`${name}[${i}]`, `must be an origin as a browser sends it (scheme://host[:port], no path, no trailing slash, lower case), got ${JSON.stringify(origin)}`)
    }
  }
  return value
}

/** The origin `value` names, serialized as a browser sends it in `Origin`; `undefined` for no URL or an opaque origin. */
function serializedOrigin (value: string): string | undefined {
  const origin = URL.canParse(value) ? new URL(value).origin : 'null'
  return origin === 'null' ? undefined : origin
}
