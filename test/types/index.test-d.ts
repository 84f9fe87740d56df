import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { register, Registry } from 'prom-client'
import { expectAssignable, expectError, expectType } from 'tsd'
import sessionGuard, {
  CLOCK_SKEW_ALLOWANCE_MS,
  decideRotation,
  expiresAt,
  isLive,
  isRemovable,
  type CompleteChallengeOptions,
  type MacKeyEntry,
  type SigningKeyEntry,
  type DpopOptions,
  type CookieAttributes,
  type AccessTokenOptions,
  type SessionEndReason,
  type SessionWatch,
  type TokenExtractor,
  type HistoryEntry,
  type SessionTimeline,
  type TimelineOptions,
  type TimelinePoint,
  type AdminRoutesOptions,
  DURATION_BOUNDS_MS,
  type RememberDeviceOptions,
  type UserExport,
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
  type MetricsRegistry,
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
app.register(sessionGuard, {
  keys: [{ kid: '2026-12', secret: 'y'.repeat(32) }, { kid: 'default', secret: Buffer.alloc(32) }],
  macKeys: [{ kid: 'default', secret: 'x'.repeat(32) }]
})
app.register(sessionGuard, {
  keys: [{ kid: 'b', private: 'pem', public: 'pem' }, { kid: 'a', public: 'pem' }],
  algorithm: 'ES256',
  macKeys: [{ kid: 'm1', secret: 'x'.repeat(32) }]
})
expectAssignable<SigningKeyEntry>({ kid: 'a', secret: 'x'.repeat(32) })
expectAssignable<MacKeyEntry>({ kid: 'm1', secret: 'x'.repeat(32) })
expectError(app.register(sessionGuard, { keys: [{ secret: 'x'.repeat(32) }], macKeys: [{ kid: 'm1', secret: 'x'.repeat(32) }] }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), macKeys: [{ kid: 'm1' }] }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), onSessionLimit: 'drop' }))
app.register(sessionGuard, {
  secret: 'x'.repeat(32),
  fingerprintCookie: '__Secure-fp',
  cookies: { sameSite: 'none', domain: 'example.com', partitioned: true },
  refresh: { allowedOrigins: ['https://app.example'], cookiePath: '/api/refresh' }
})
expectAssignable<CookieAttributes>({ sameSite: 'lax' })
app.register(sessionGuard, { secret: 'x'.repeat(32), accessToken: { transport: 'both', cookie: '__Host-at' } })
expectAssignable<AccessTokenOptions>({ transport: 'cookie' })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), accessToken: { transport: 'query' } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), accessToken: { cookieName: 'at' } }))
app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: true })
app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: { algorithms: ['ES256', 'EdDSA'], window: '60s', nonce: true } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: { algorithms: ['HS256'] } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: { nonce: 'yes' } }))
app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: { origins: ['https://api.example.com'] } })
expectType<string[] | undefined>(({} as DpopOptions).origins)
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), dpop: { origins: 'https://api.example.com' } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), cookies: { sameSite: 'None' } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), cookies: { partitioned: 'yes' } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), cookies: { secure: false } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), maxSessionsPerUser: '5' }))
app.register(sessionGuard, { secret: 'x'.repeat(32), deviceTypeLimits: { mobile: { max: 1, onLimit: 'reject' }, tablet: { max: 1 } } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), deviceTypeLimits: { phone: { max: 1 } } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), deviceTypeLimits: { mobile: { onLimit: 'reject' } } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), deviceTypeLimits: { mobile: 1 } }))
app.register(sessionGuard, { secret: 'x'.repeat(32), lockout: { ipFreeAttempts: 20, ipv6Prefix: 56 } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), lockout: { ipv6Prefix: '64' } }))

expectAssignable<SessionStore>(memoryStore())
expectType<MemoryStore>(memoryStore({ onCapacity: 'reject' }))
expectAssignable<SessionGuardOptions>({ secret: 'x', global: true })
expectAssignable<SessionGuardOptions>({ secret: 'x', global: { skip: (route) => route.url.startsWith('/documentation') || route.config.public === true } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), global: { skip: true } }))
app.register(sessionGuard, {
  secret: 'x'.repeat(32),
  openapi: { securityScheme: 'jwt' },
  routes: {
    prefix: '/sessions',
    routeOptions: {
      config: { public: false },
      logLevel: 'warn',
      onRequest: async (request) => { request.log.info('seen') },
      preHandler: [async (request) => { expectType<SessionRecord | null>(request.authSession) }],
      schema: { tags: ['account'], security: [{ jwt: [] }] },
      hide: false
    }
  },
  health: { path: '/health', routeOptions: { hide: true } },
  metrics: { path: '/metrics', routeOptions: { onRequest: async () => {} } }
})
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), routes: { prefix: '/s', routeOptions: { schema: { response: {} } } } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), openapi: { securityScheme: 5 } }))

expectType<SessionManager>(app.sessions)
expectType<Promise<SessionRecord[]>>(app.sessions.list('alice'))
expectType<Promise<number>>(app.sessions.revokeAll('alice', { except: 'sid', reason: 'password-change' }))
expectType<Promise<boolean>>(app.sessions.revoke('sid'))
expectType<Promise<boolean>>(app.sessions.trustDevice('sid'))
expectType<Promise<HistoryEntry[]>>(app.sessions.history('alice', { limit: 20, before: '17' }))
expectType<Promise<UserExport>>(app.sessions.export('alice'))
expectType<Promise<number>>(app.sessions.erase('alice'))
expectError(app.sessions.history('alice', { limit: '20' }))
expectAssignable<SessionGuardOptions>({ secret: 'x', history: { maxEntries: 50, maxAge: '30d' } })
expectAssignable<SessionGuardOptions>({ secret: 'x', history: false })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), history: { maxEntries: '50' } }))
expectAssignable<SessionGuardOptions>({ secret: 'x', anomalies: { deviceChange: 'revoke', impossibleTravel: { maxSpeedKmh: 800 } } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), anomalies: { deviceChange: 'block' } }))
app.register(sessionGuard, { secret: 'x'.repeat(32), metrics: { path: '/metrics', rejectionReasons: true } })
// prom-client's registries, its own or the global one, fit the structural MetricsRegistry.
app.register(sessionGuard, { secret: 'x'.repeat(32), metrics: { registry: new Registry(), prefix: 'auth_' } })
expectAssignable<MetricsRegistry>(register)
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), metrics: { registry: {} } }))
app.register(sessionGuard, { secret: 'x'.repeat(32), logging: { levels: { 'auth.rejected': 'info', 'session.created': 'silent' } } })
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), logging: { levels: { 'auth.rejected': 'verbose' } } }))
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), logging: { levels: { 'auth.refused': 'info' } } }))
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
  expectType<'Bearer' | 'DPoP'>(issued.tokenType)
  expectError(reply.issueSession({ user: 'alice' }))
  expectType<Promise<IssuedSession>>(reply.refreshSession())
  expectType<Promise<IssuedSession>>(request.regenerateSession(reply, { role: 'user' }))
  expectType<Promise<void>>(request.endSession(reply))
  expectType<Promise<boolean>>(request.completeChallenge())
  expectType<Promise<boolean>>(request.completeChallenge(reply, { rememberDevice: true }))
  expectError(request.completeChallenge(reply, { rememberDevice: 'yes' }))
  const remembered = await reply.issueSession({ userId: 'alice', rememberDevice: true })
  expectType<boolean | undefined>(remembered.deviceRemembered)
  expectError(reply.issueSession({ userId: 'alice', rememberDevice: 'yes' }))
  expectType<Promise<boolean>>(app.sessions.forgetDevice('alice', 'session-id'))
  expectType<Promise<void>>(app.sessions.forgetDevices('alice'))
})
expectAssignable<SessionGuardOptions>({ secret: 'x', rememberDevice: true })
expectAssignable<SessionGuardOptions>({ secret: 'x', rememberDevice: { ttl: '30d', cookieName: '__Host-device', maxPerUser: 5 } })
expectError<SessionGuardOptions>({ secret: 'x', rememberDevice: { ttl: '30d', cookie: 'x' } })
expectAssignable<RememberDeviceOptions>({ ttl: 1000 })
expectAssignable<CompleteChallengeOptions>({ rememberDevice: false })
app.post('/step-up', { preHandler: app.requireSession, config: { allowChallenged: true } }, async () => ({}))
expectError(app.post('/step-up', { config: { allowChallenged: 'yes' } }, async () => ({})))
expectAssignable<SessionGuardOptions>({ secret: 'x', anomalies: { newDevice: 'challenge', ipChange: 'challenge' } })

// WebSocket and SSE: where the token is, and the re-check of a long-lived connection.
const fromQuery: TokenExtractor = (request) => (request.query as { access_token?: string }).access_token
expectAssignable<SessionGuardOptions>({ secret: 'x', extractToken: fromQuery })
expectError<SessionGuardOptions>({ secret: 'x', extractToken: 'query' })
app.get('/events', { preHandler: app.requireSession, config: { extractToken: fromQuery } }, async (request: FastifyRequest) => {
  const watch = request.watchSession({ every: '30s', onEnd: (reason) => { expectType<SessionEndReason>(reason) } })
  expectType<SessionWatch>(watch)
  expectType<Promise<boolean>>(watch.check())
  expectType<void>(watch.stop())
  expectError(request.watchSession({ every: '30s' }))
})
expectAssignable<SessionEndReason>('step_up')
expectType<'revoked' | 'expired' | 'step_up' | 'unavailable'>(null as unknown as SessionEndReason)
expectError<SessionEndReason>('challenged')
expectError(app.get('/events', { config: { extractToken: 'query' } }, async () => ({})))

// The rules a store implementation imports.
declare const session: SessionRecord
declare const state: RefreshState
expectType<RotationDecision>(decideRotation(state, 'hash', Date.now(), 5000))
expectType<RefreshState>(rotatedState(state, 'hash', 'next', Date.now()))
expectType<SessionRecord>(withActivity(session, { lastSeenAt: 1, idleExpiresAt: 2, changes: { ip: '192.0.2.1' } }))
expectType<number>(expiresAt(session))
expectType<boolean>(isLive(session, Date.now()))
expectType<boolean>(isRemovable(session, Date.now() - CLOCK_SKEW_ALLOWANCE_MS))
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

// The dashboard: this instance's timeline, and the admin routes behind the app's own check.
expectType<Promise<SessionTimeline | undefined>>(app.sessions.timeline())
expectAssignable<SessionGuardOptions>({ secret: 'x', timeline: { interval: '1m', points: 120 } })
expectAssignable<SessionGuardOptions>({ secret: 'x', timeline: false })
expectAssignable<SessionGuardOptions>({
  secret: 'x',
  admin: { prefix: '/admin', preHandler: async (_request, reply) => { await reply.code(403).send() }, routeOptions: { hide: true } }
})
expectError(app.register(sessionGuard, { secret: 'x'.repeat(32), admin: { prefix: '/admin' } }))
expectType<readonly number[]>(DURATION_BOUNDS_MS)
expectAssignable<AdminRoutesOptions['prefix']>('/admin')
expectAssignable<TimelineOptions>({ points: 10 })
expectType<number | null>(({} as TimelinePoint).activeSessions)
