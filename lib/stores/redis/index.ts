/** The Redis store's public API; the files beside this one are its parts. */
export { RedisStore, redisStore } from './redis-store.js'
export type { LocalCacheOptions, RedisStoreOptions } from './options.js'
