import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import sessionGuard, {
  decideRotation,
  expiresAt,
  isLive,
  type IssuedSession,
  memoryStore,
  type MemoryStore,
  type RefreshState,
  rotatedState,
  type RotationDecision,
  type SessionGuardOptions,
  type SessionManager,
  type SessionRecord,
  type SessionStore,
  sessionGuard as named,
  fastifySessionGuard,
  type AccessClaims,
  type Guard,
  withActivity,
  migrateSessions,
  supersedes,
  type MigrationProgress,
  type SnapshotOptions,
  type ImportResult,
  type HeldCounter
} from '../..'
import sessionGuardRequired = require('../..')
import * as namespace from '../..'

// Every import style names the one plugin: `module.exports` is the plugin, with `.default` and named exports.
expectType<typeof sessionGuard>(named)
expectType<typeof sessionGuard>(fastifySessionGuard)
expectType<typeof sessionGuard>(sessionGuardRequired)
expectType<typeof sessionGuard>(sessionGuardRequired.default)
expectType<typeof sessionGuard>(namespace.default)
expectType<typeof memoryStore>(sessionGuardRequired.memoryStore)
expectType<typeof memoryStore>(namespace.memoryStore)

// The app types `request.user` through this package (reachable under pnpm too), not through @fastify/jwt.
declare module '../..' {
  interface FastifyJWT {
    user: AccessClaims & { role: 'admin' | 'member' }
  }
}

const app = Fastify()
app.register(sessionGuard, { secret: 'x'.repeat(32) })
app.register(named, { secret: 'x'.repeat(32), store: memoryStore({ max: 10 }), onSessionLimit: 'reject' })
app.register(sessionGuard, {
  keys: { private: 'pem', public: 'pem' },
  algorithm: 'ES256',
  accessTokenTtl: '15m',
  idleTimeout: 30 * 60_000,
  remember: { absoluteTimeout: '30d' },
  refresh: { transport: 'body', graceWindow: '5s', allowedOrigins: ['https://app.example'] },
  clock: () => Date.now()
})
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), onSessionLimit: 'drop' }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), maxSessionsPerUser: '5' }))
app.register(sessionGuard, { secret: 'x'.repeat(32), lockout: { ipFreeAttempts: 20, ipv6Prefix: 56 } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), lockout: { ipv6Prefix: '64' } }))

expectAssignable<SessionStore>(memoryStore())
expectType<MemoryStore>(memoryStore({ onCapacity: 'reject' }))
expectAssignable<SessionGuardOptions>({ secret: 'x', global: true })

expectType<SessionManager>(app.sessions)
expectType<Promise<SessionRecord[]>>(app.sessions.list('alice'))
expectType<Promise<number>>(app.sessions.revokeAll('alice', { except: 'sid', reason: 'password-change' }))
expectType<Promise<boolean>>(app.sessions.revoke('sid'))
expectType<Promise<boolean>>(app.sessions.trustDevice('sid'))
expectAssignable<SessionGuardOptions>({ secret: 'x', anomalies: { deviceChange: 'revoke', impossibleTravel: { maxSpeedKmh: 800 } } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), anomalies: { deviceChange: 'block' } }))
expectType<string>(app.sessions.prometheus(undefined, { rejectionReasons: true }))
app.register(sessionGuard, { secret: 'x'.repeat(32), metrics: { path: '/metrics', rejectionReasons: true } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), metrics: { path: '/metrics', rejectionReasons: 'yes' } }))

expectType<Guard>(app.requireSession)
app.get('/me', { preHandler: app.requireSession }, async (request) => {
  expectType<SessionRecord | null>(request.authSession)
  expectType<AccessClaims & { role: 'admin' | 'member' }>(request.user)
  expectType<'admin' | 'member'>(request.user.role)
  expectType<string>(request.user.sid)
  return request.user
})
app.get('/hook', { onRequest: app.requireSession }, async () => 'ok')
app.get('/open', { config: { public: true } }, async () => 'ok')

app.post('/login', async (request: FastifyRequest, reply: FastifyReply) => {
  const issued = await reply.issueSession({ userId: 'alice', claims: { role: 'admin' }, remember: true })
  expectType<IssuedSession>(issued)
  expectType<string>(issued.accessToken)
  expectType<string | undefined>(issued.refreshToken)
  expectError(reply.issueSession({ user: 'alice' }))
  expectType<Promise<IssuedSession>>(reply.refreshSession())
  expectType<Promise<IssuedSession>>(request.regenerateSession(reply, { role: 'user' }))
  expectType<Promise<void>>(request.endSession(reply))
})

// The rules a store implementation imports.
declare const session: SessionRecord
declare const state: RefreshState
expectType<RotationDecision>(decideRotation(state, 'hash', Date.now(), 5000))
expectType<RefreshState>(rotatedState(state, 'hash', 'next', Date.now()))
expectType<SessionRecord>(withActivity(session, { lastSeenAt: 1, idleExpiresAt: 2, changes: { ip: '192.0.2.1' } }))
expectType<number>(expiresAt(session))
expectType<boolean>(isLive(session, Date.now()))
expectError(decideRotation(state, 'hash', Date.now()))

// Moving sessions between stores, and the memory store's snapshots.
expectType<Promise<MigrationProgress>>(migrateSessions({ from: memoryStore(), to: memoryStore(), batchSize: 100, prune: true, onProgress: (progress) => progress.sessions.pruned }))
expectError(migrateSessions({ from: memoryStore() }))
expectError(migrateSessions({ from: memoryStore(), to: memoryStore(), prune: 'yes' }))
expectType<boolean>(supersedes(session, session))
expectType<MemoryStore>(memoryStore({ snapshot: { path: './sessions.snapshot', intervalMs: 30_000, onInvalid: 'start-empty' } }))
expectAssignable<SnapshotOptions>({ path: 'x' })
expectError(memoryStore({ snapshot: { intervalMs: 1000 } }))
expectError(memoryStore({ snapshot: { path: 'x', onInvalid: 'ignore' } }))
expectType<Promise<void>>(memoryStore().saveSnapshot())
declare const store: SessionStore
expectType<((sessions: readonly SessionRecord[], now: number) => Promise<ImportResult>) | undefined>(store.importSessions)
expectType<((batchSize: number, now: number) => AsyncIterable<HeldCounter[]>) | undefined>(store.scanCounters)
