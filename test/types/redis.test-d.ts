import { expectAssignable, expectError, expectType } from 'tsd'
import type { SessionStore } from 'fastify-session-guard'
import * as main from 'fastify-session-guard'
import { redisStore, RedisStore, type RedisStoreOptions } from 'fastify-session-guard/redis'

// The Redis store is its own entry; the main one does not name it.
expectType<RedisStore>(redisStore({ connection: 'redis://127.0.0.1:6379', localCache: true }))
expectAssignable<SessionStore>(redisStore({ connection: 'redis://127.0.0.1:6379' }))
expectAssignable<RedisStoreOptions>({ connection: 'redis://127.0.0.1:6379', prefix: 'app:' })
expectError(main.redisStore)
