import type { RouteShorthandOptions } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { bool, join, section, type OptionNames } from '../validate.js'
import { errorResponseSchema } from './views.js'

/**
 * What an app adds to each route the plugin registers (`routes.routeOptions`,
 * `health.routeOptions`, `metrics.routeOptions`): the route's `config` (read by
 * other plugins, e.g. `rateLimit` for `@fastify/rate-limit`), hooks, its log
 * level, and what `@fastify/swagger` shows of it.
 */
export interface RouteExtras extends Pick<RouteShorthandOptions,
'config' | 'logLevel' | 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'preSerialization' | 'onSend' | 'onResponse' | 'onTimeout' | 'onError'> {
  /** OpenAPI fields merged into the route's schema; `tags` replaces the plugin's own. */
  schema?: RouteSchemaExtras
  /**
   * Leave the route out of the `@fastify/swagger` document (`schema.hide`).
   * @default false
   */
  hide?: boolean
}

/** The OpenAPI fields of a route's schema that an app may set. */
export interface RouteSchemaExtras {
  tags?: string[]
  summary?: string
  description?: string
  operationId?: string
  deprecated?: boolean
  externalDocs?: { url: string, description?: string }
  /** The route's security requirement, e.g. for `/metrics` behind an `onRequest` of your own. */
  security?: Array<Record<string, string[]>>
}

/** How the plugin's routes describe themselves in OpenAPI. */
export interface OpenApiOptions {
  /**
   * Name of the security scheme of the access token, as the app declares it in
   * `@fastify/swagger`'s `components.securitySchemes` (`{ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }`).
   * Guarded routes require it; public ones declare `security: []`. `false`: no `security` at all.
   * @default 'bearerAuth'
   */
  securityScheme?: string | false
}

const HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onTimeout', 'onError'] as const

const ROUTE_EXTRAS_NAMES: OptionNames<RouteExtras> = {
  config: true,
  logLevel: true,
  onRequest: true,
  preParsing: true,
  preValidation: true,
  preHandler: true,
  preSerialization: true,
  onSend: true,
  onResponse: true,
  onTimeout: true,
  onError: true,
  schema: true,
  hide: true
}
const SCHEMA_EXTRAS_NAMES: OptionNames<RouteSchemaExtras> = {
  tags: true, summary: true, description: true, operationId: true, deprecated: true, externalDocs: true, security: true
}
export const OPENAPI_OPTION_NAMES: OptionNames<OpenApiOptions> = { securityScheme: true }

const DEFAULT_SECURITY_SCHEME = 'bearerAuth'

/** The `openapi` option after validation: the scheme's name, or `undefined` for none. */
export function parseOpenApiOptions (value: OpenApiOptions | undefined): string | undefined {
  const scheme = section(value, OPENAPI_OPTION_NAMES, 'openapi').securityScheme ?? DEFAULT_SECURITY_SCHEME
  if (scheme === false) return undefined
  if (typeof scheme !== 'string' || scheme === '') throw new InvalidOptionError('openapi.securityScheme', 'must be a non-empty string or false')
  return scheme
}

/** A `routeOptions` section after validation (an absent one is empty). */
export function parseRouteExtras (value: RouteExtras | undefined, path: string): RouteExtras {
  const extras = section(value, ROUTE_EXTRAS_NAMES, path)
  if (extras.config !== undefined && (typeof extras.config !== 'object' || extras.config === null)) {
    throw new InvalidOptionError(join(path, 'config'), 'must be an object')
  }
  if (extras.logLevel !== undefined && typeof extras.logLevel !== 'string') throw new InvalidOptionError(join(path, 'logLevel'), 'must be a log level')
  for (const hook of HOOKS) {
    const handlers: unknown = extras[hook]
    if (handlers !== undefined && ![handlers].flat().every((handler) => typeof handler === 'function')) {
      throw new InvalidOptionError(join(path, hook), 'must be a function or an array of functions')
    }
  }
  if (extras.hide !== undefined) bool(extras.hide, join(path, 'hide'))
  const schema = section(extras.schema, SCHEMA_EXTRAS_NAMES, join(path, 'schema'))
  if (schema.tags !== undefined && !(Array.isArray(schema.tags) && schema.tags.every((tag) => typeof tag === 'string'))) {
    throw new InvalidOptionError(join(path, 'schema.tags'), 'must be an array of strings')
  }
  for (const name of ['summary', 'description', 'operationId'] as const) {
    if (schema[name] !== undefined && typeof schema[name] !== 'string') throw new InvalidOptionError(join(path, `schema.${name}`), 'must be a string')
  }
  if (schema.deprecated !== undefined) bool(schema.deprecated, join(path, 'schema.deprecated'))
  if (schema.externalDocs !== undefined && typeof schema.externalDocs?.url !== 'string') {
    throw new InvalidOptionError(join(path, 'schema.externalDocs'), 'must be an object with a url')
  }
  if (schema.security !== undefined && !(Array.isArray(schema.security) && schema.security.every((entry) => typeof entry === 'object' && entry !== null))) {
    throw new InvalidOptionError(join(path, 'schema.security'), 'must be an array of security requirement objects')
  }
  return Object.freeze({ ...extras })
}

/** Whether a route is reached with the access token, or by anyone. */
export type RouteAccess = 'session' | 'public'

interface Described {
  /** OpenAPI `summary` and `tags`, and the responses of success and of the route's own refusals. */
  schema: Record<string, unknown> & { response: Record<string, unknown> }
}

const describedError = (description: string): Record<string, unknown> => ({ ...errorResponseSchema, description })
// Bodies written by other plugins (@fastify/rate-limit, @fastify/under-pressure) may carry more fields: keep them.
const foreignError = (description: string): Record<string, unknown> => ({ ...errorResponseSchema, additionalProperties: true, description })

const UNAUTHORIZED = describedError('No valid session (the `WWW-Authenticate` header says so too)')
const UNAVAILABLE = foreignError('The session store is unavailable')
const TOO_MANY = foreignError('Too many requests')

/**
 * A route of the plugin's with what the app adds: its hooks run after the
 * plugin's own of the same stage (so an app's `preHandler` sees `request.user`),
 * its `config` never overrides the plugin's (`public`), its schema fields are
 * OpenAPI text only. Guarded routes declare the security scheme and 401; every
 * route declares 503, and 429 when the app rate-limits it (`config.rateLimit`,
 * or `@fastify/rate-limit` registered before the plugin).
 */
export function routeWith <T extends RouteShorthandOptions & Described> (
  own: T,
  extras: RouteExtras,
  { access, securityScheme, rateLimited }: { access: RouteAccess, securityScheme: string | undefined, rateLimited: boolean }
): T {
  const response: Record<string, unknown> = { ...own.schema.response }
  if (access === 'session') response[401] = UNAUTHORIZED
  response[503] ??= UNAVAILABLE
  if (rateLimited || (extras.config as Record<string, unknown> | undefined)?.rateLimit !== undefined) response[429] = TOO_MANY
  const merged: Record<string, unknown> = {
    ...(own as Record<string, unknown>),
    config: { ...extras.config, ...own.config },
    schema: {
      ...own.schema,
      ...(securityScheme === undefined ? {} : { security: access === 'session' ? [{ [securityScheme]: [] }] : [] }),
      ...extras.schema,
      ...(extras.hide === true ? { hide: true } : {}),
      response
    }
  }
  if (extras.logLevel !== undefined) merged.logLevel = extras.logLevel
  for (const hook of HOOKS) {
    const handlers = [own[hook], extras[hook]].flat().filter((handler) => handler !== undefined)
    if (handlers.length > 0) merged[hook] = handlers
  }
  return merged as T
}
