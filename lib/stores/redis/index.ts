/** The Redis store's public API; the files beside this one are its parts. */
export { RedisStore, redisStore, type LocalCacheOptions, type RedisStoreOptions } from './redis-store.js'
