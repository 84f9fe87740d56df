/**
 * `fastify-session-guard/redis`: the Redis store.
 *
 *   import { redisStore } from 'fastify-session-guard/redis'
 *
 *   await app.register(sessionGuard, { secret, store: redisStore({ connection: process.env.REDIS_URL }) })
 *
 * It runs on ioredis, an optional peer dependency of the package that the app
 * installs: the main entry never loads this one, so an app on the memory store
 * loads no Redis client, and this one loads ioredis only to make a client itself.
 * A client the app gives may be any of the shape `RedisClient` (ioredis 5 or 6,
 * iovalkey). The files beside this one are its parts.
 */
export { RedisStore, redisStore } from './redis-store.js'
export type { DurabilityOptions, LocalCacheOptions, RedisStoreOptions } from './options.js'
export type {
  RedisClient,
  RedisClientOptions,
  RedisClusterClient,
  RedisNode,
  RedisStandaloneClient,
  RedisSubscriber,
  RedisSubscriberOptions
} from './client.js'
