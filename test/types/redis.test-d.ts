import { expectAssignable, expectError, expectType } from 'tsd'
import type { SessionStore } from 'fastify-session-guard'
import * as main from 'fastify-session-guard'
import { redisStore, RedisStore, type RedisClient, type RedisStoreOptions } from 'fastify-session-guard/redis'

// The Redis store is its own entry; the main one does not name it.
expectType<RedisStore>(redisStore({ connection: 'redis://127.0.0.1:6379', localCache: true }))
expectAssignable<SessionStore>(redisStore({ connection: 'redis://127.0.0.1:6379' }))
expectAssignable<RedisStoreOptions>({ connection: 'redis://127.0.0.1:6379', prefix: 'app:' })
expectAssignable<RedisStoreOptions>({ cluster: { nodes: [{ host: '127.0.0.1', port: 7000 }] }, statsShards: 64 })
expectError(redisStore({ connection: 'redis://127.0.0.1:6379', statsShards: '64' }))
expectError(main.redisStore)

// Any client of the shape the store calls: ioredis 6 and 5, standalone or Cluster, and iovalkey.
declare const ioredis6: import('ioredis').Redis
declare const ioredis6Cluster: import('ioredis').Cluster
declare const ioredis5: import('ioredis5').Redis
declare const ioredis5Cluster: import('ioredis5').Cluster
declare const valkey: import('iovalkey').Redis
declare const valkeyCluster: import('iovalkey').Cluster
for (const client of [ioredis6, ioredis6Cluster, ioredis5, ioredis5Cluster, valkey, valkeyCluster]) {
  expectAssignable<RedisClient>(client)
  expectType<RedisStore>(redisStore({ client, closeClient: true, localCache: { max: 100 } }))
}
expectType<RedisClient | undefined>(redisStore({ client: valkey }).client)
// A client that cannot run the scripts does not type-check.
expectError(redisStore({ client: { isCluster: false, get: async (key: string) => key } }))
