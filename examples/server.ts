/**
 * The example server: two demo users (alice and bob, password "demo-password")
 * on the in-memory store, a "Your devices" page at `/`, the session routes at
 * `/sessions`, and admin routes and a sessions dashboard (`/admin.html`) for
 * alice. Run it with `npm run example`, then follow what it prints. Everything here is the app's own code except the
 * plugin's decorators and routes.
 */
import { randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import fastifyStatic from '@fastify/static'
import { LRUCache } from 'lru-cache'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type preHandlerAsyncHookHandler } from 'fastify'
import sessionGuard, { isChallenged, type SessionGuardOptions, sessionLimitResponseSchema, toView } from '../lib/index.js'
import { DEMO_ADDRESSES, exampleLocation } from './geo.js'

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>

interface User { id: string, username: string, role: string, salt: Buffer, hash: Buffer }

async function hashPassword (password: string, salt = randomBytes(16)): Promise<{ salt: Buffer, hash: Buffer }> {
  return { salt, hash: await scryptAsync(password, salt, 32) }
}

/** The app's own user table: in memory, passwords hashed with scrypt. */
export async function createUsers (): Promise<Map<string, User>> {
  const users = new Map<string, User>()
  for (const [username, role] of [['alice', 'admin'], ['bob', 'member']] as const) {
    users.set(username, { id: `user-${username}`, username, role, ...await hashPassword('demo-password') })
  }
  return users
}

export async function buildServer (
  options: Partial<SessionGuardOptions> & { logger?: FastifyServerOptions['logger'] } = {}
): Promise<FastifyInstance> {
  const { logger = true, ...guardOptions } = options
  // Trust X-Forwarded-For only from a proxy on this machine: `curl -H 'X-Forwarded-For: 1.121.0.1'`
  // then plays a client in Sydney (see examples/geo.ts).
  const app = Fastify({ logger, trustProxy: '127.0.0.1' })
  // /health and /metrics are for this machine's own probe and scraper: anyone else gets a 404. `request.ip`
  // is the client as `trustProxy` sees it, so a request through a local proxy counts as the client it is
  // forwarded for, not as loopback.
  const privatePaths = new Set(['/health', '/metrics'])
  app.addHook('onRequest', async (request, reply) => {
    if (privatePaths.has(request.routeOptions.url as string) && !['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(request.ip)) {
      return await reply.callNotFound()
    }
  })
  const users = await createUsers()
  const stepUpCodes = new StepUpCodes()
  const byId = new Map([...users.values()].map((user) => [user.id, user]))
  // An unknown username is checked against this, so it costs what a wrong password costs.
  const decoy = await hashPassword('decoy-password')

  async function checkPassword (username: string, password: string): Promise<User | undefined> {
    const user = users.get(username.trim().toLowerCase())
    const { salt, hash } = user ?? decoy
    const candidate = await scryptAsync(password, salt, 32)
    return timingSafeEqual(candidate, hash) && user !== undefined ? user : undefined
  }

  // Who is an admin is the app's to say: the token's role claim. The plugin's guard runs first.
  const adminOnly: preHandlerAsyncHookHandler = async (request, reply) => {
    if ((request.user as { role?: string }).role !== 'admin') {
      return await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'Admins only' })
    }
  }

  await app.register(sessionGuard, {
    secret: guardOptions.secret ?? process.env.SESSION_SECRET ?? randomSecret(app),
    accessTokenTtl: '15m',
    idleTimeout: '30m',
    absoluteTimeout: '12h',
    maxSessionsPerUser: 5,
    onSessionLimit: 'evict-oldest',
    routes: { prefix: '/sessions' },
    resolveLocation: await exampleLocation(),
    privacy: { ipMode: 'full' },
    health: { path: '/health' },
    metrics: { path: '/metrics' },
    // A sign-in from too far away too soon gets a session that must pass a one-time code first (a step-up).
    anomalies: { impossibleTravel: { policy: 'challenge' } },
    // The dashboard at /admin.html: its routes (overview, one user, revoke) behind the role check above,
    // and a time series of one-minute points over two hours, so a demo shows movement at once.
    admin: { prefix: '/admin/dashboard', preHandler: adminOnly },
    timeline: { interval: '1m', points: 120 },
    // "Was this you?": the user's other devices are asked on their devices page; a real app also e-mails them.
    alerts: {
      onAlert ({ userId, session }) {
        app.log.warn({ user: byId.get(userId)?.username, device: session.device?.name, flags: session.flags }, 'new sign-in alert (a real app e-mails it)')
      }
    },
    // "Remember this device": a signed cookie that lets the device's next sign-in pass the new-device rule.
    rememberDevice: true,
    ...guardOptions
  })
  await app.register(fastifyStatic, { root: join(__dirname, 'public') })

  const credentials = {
    type: 'object',
    required: ['username', 'password'],
    properties: {
      username: { type: 'string', maxLength: 128 },
      password: { type: 'string', maxLength: 1024 },
      remember: { type: 'boolean' }
    }
  } as const

  // The 409 schema lets a login refused at the session limit (onSessionLimit: 'reject') carry the way out.
  app.post<{ Body: { username: string, password: string, remember?: boolean } }>('/login', { schema: { body: credentials, response: { 409: sessionLimitResponseSchema } } }, async (request, reply) => {
    const { username, password } = request.body
    // Locked after repeated failures: 429 with Retry-After, before any password is checked.
    // Naming the account (when there is one) puts the failures in its login history.
    const userId = users.get(username.trim().toLowerCase())?.id
    await app.sessions.loginAttempts.check(request, username, { userId })
    const user = await checkPassword(username, password)
    if (user === undefined) {
      await app.sessions.loginAttempts.fail(request, username, { userId })
      return await reply.code(401).send({ statusCode: 401, code: 'WRONG_CREDENTIALS', error: 'Unauthorized', message: 'Wrong username or password' })
    }
    await app.sessions.loginAttempts.succeed(request, username)
    const { accessToken, refreshToken, session } = await reply.issueSession({
      userId: user.id,
      // amr (RFC 8176): how the user proved who they were; the devices page shows it ("password").
      claims: { name: user.username, role: user.role, amr: ['pwd'] },
      remember: request.body.remember === true,
      // The same checkbox: written only if this sign-in is not flagged or challenged (then at its step-up).
      rememberDevice: request.body.remember === true
    })
    const stepUp = isChallenged(session)
    if (stepUp) stepUpCodes.issue(session.id, user.username, app)
    return { accessToken, refreshToken, sessionId: session.id, stepUp }
  })

  // The second factor of a challenged sign-in: the code the server "sent" (printed to its log).
  app.post<{ Body: { code: string } }>('/step-up', {
    preHandler: app.requireSession,
    config: { allowChallenged: true },
    schema: { body: { type: 'object', required: ['code'], properties: { code: { type: 'string', pattern: '^[0-9]{6}$' } } } }
  }, async (request, reply) => {
    const verdict = stepUpCodes.check(request.authSession!.id, request.body.code)
    if (verdict !== 'right') {
      const [statusCode, code, message] = STEP_UP_REFUSALS[verdict]
      return await reply.code(statusCode).send({ statusCode, code, error: 'Step-up', message })
    }
    // The code vouched for the device: remember it if the sign-in asked to ("Remember this device" was checked).
    return { completed: await request.completeChallenge(reply, { rememberDevice: request.authSession!.remembered }) }
  })

  app.get('/me', { preHandler: app.requireSession }, async (request) => ({
    user: request.user,
    session: { id: request.authSession?.id, createdAt: request.authSession?.createdAt, remembered: request.authSession?.remembered }
  }))

  app.post('/refresh', async (request, reply) => {
    const { accessToken, refreshToken } = await reply.refreshSession()
    return { accessToken, refreshToken }
  })

  // A session waiting for its step-up may still sign out.
  app.post('/logout', { preHandler: app.requireSession, config: { allowChallenged: true } }, async (request, reply) => {
    await request.endSession(reply)
    return await reply.code(204).send()
  })

  app.post<{ Body: { currentPassword: string, newPassword: string } }>('/password', {
    preHandler: app.requireSession,
    schema: {
      body: {
        type: 'object',
        required: ['currentPassword', 'newPassword'],
        properties: { currentPassword: { type: 'string', maxLength: 1024 }, newPassword: { type: 'string', minLength: 12, maxLength: 1024 } }
      }
    }
  }, async (request, reply) => {
    const user = byId.get(request.authSession?.userId as string) as User
    // Checking the current password is a login in all but name: counted and locked out like one (and with
    // the login's counters), or a stolen session could guess it here at leisure.
    await app.sessions.loginAttempts.check(request, user.username)
    if (await checkPassword(user.username, request.body.currentPassword) === undefined) {
      await app.sessions.loginAttempts.fail(request, user.username)
      return await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'Wrong current password' })
    }
    await app.sessions.loginAttempts.succeed(request, user.username)
    Object.assign(user, await hashPassword(request.body.newPassword))
    // A changed password ends every session of the user, this one included.
    const revoked = await app.sessions.revokeAll(user.id, { reason: 'password-change' })
    await request.endSession(reply)
    return { revoked }
  })

  // The admin view: any user's sessions, for users whose token says role "admin".
  app.get<{ Params: { username: string } }>('/admin/users/:username/sessions', { preHandler: [app.requireSession, adminOnly] }, async (request, reply) => {
    const user = users.get(request.params.username)
    if (user === undefined) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'No such user' })
    return { sessions: (await app.sessions.list(user.id)).map((session) => toView(session)) }
  })
  app.delete<{ Params: { id: string } }>('/admin/sessions/:id', { preHandler: [app.requireSession, adminOnly] }, async (request, reply) => {
    const revoked = await app.sessions.revoke(request.params.id, 'admin')
    return await reply.code(revoked ? 204 : 404).send()
  })

  return app
}

const STEP_UP_REFUSALS = {
  wrong: [400, 'STEP_UP_WRONG_CODE', 'Wrong code'],
  none: [409, 'STEP_UP_NO_CODE', 'No code pending: sign in again'],
  locked: [429, 'STEP_UP_LOCKED', 'Too many wrong codes: try again in an hour']
} as const

/**
 * One-time codes of challenged sign-ins, by session: six digits, ten minutes, five tries, used once;
 * and ten wrong codes per user an hour, whatever the session. A real app sends the code by e-mail or
 * text; the example prints it to its log.
 */
class StepUpCodes {
  // Bounded: at most 10 000 pending, the least recently issued dropped first; each for ten minutes.
  readonly #codes = new LRUCache<string, { code: string, tries: number, username: string }>({ max: 10_000, ttl: 10 * 60_000 })
  // Wrong codes per user, for an hour after the last: each sign-in brings a new code, so whoever holds the
  // password would otherwise get five more guesses per sign-in, as many times as they like.
  readonly #misses = new LRUCache<string, number>({ max: 10_000, ttl: 60 * 60_000 })

  issue (sessionId: string, username: string, app: FastifyInstance): void {
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
    this.#codes.set(sessionId, { code, tries: 0, username })
    app.log.warn({ user: username, code }, 'step-up code (the example prints it; a real app sends it by e-mail or text)')
  }

  check (sessionId: string, code: string): 'right' | 'wrong' | 'none' | 'locked' {
    const held = this.#codes.get(sessionId)
    if (held === undefined) return 'none'
    const misses = this.#misses.get(held.username) ?? 0
    if (misses >= 10) return 'locked'
    if (++held.tries >= 5) this.#codes.delete(sessionId)
    if (!timingSafeEqual(Buffer.from(code), Buffer.from(held.code))) {
      this.#misses.set(held.username, misses + 1)
      return 'wrong'
    }
    this.#codes.delete(sessionId)
    return 'right'
  }
}

function randomSecret (app: FastifyInstance): string {
  app.log.warn('SESSION_SECRET is not set: using a random secret, so tokens die with this process')
  return randomBytes(32).toString('base64url')
}

/**
 * What the example prints when it starts: its process id, and the `curl`
 * commands that walk through the API. A route without a body (`DELETE`, the
 * `revoke-*` ones) is called without a JSON content type: Fastify refuses an
 * empty JSON body.
 */
export function banner (base: string, pid: number): string {
  return `
fastify-session-guard example on ${base} (process ${pid}: stop it with Ctrl-C or \`kill ${pid}\`)
Users: alice and bob, password "demo-password".

Open ${base}/ in a browser for the "Your devices" page (sign in from two browsers).
Signed in as alice (the admin), open ${base}/admin.html for the sessions dashboard: charts of sessions,
sign-ins by country, devices, anomalies and lockouts, and a user search (user ids: user-alice, user-bob).

  # log in: keep the cookies (fingerprint and refresh token) in ./jar, the access token in $TOKEN
  TOKEN=$(curl -s -c jar -H 'content-type: application/json' -d '{"username":"alice","password":"demo-password"}' ${base}/login | node -pe 'JSON.parse(require("fs").readFileSync(0)).accessToken')

  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/me                          # who am I
  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/sessions                    # your devices (each with its id)
  curl -s -b jar -H "authorization: Bearer $TOKEN" -X DELETE ${base}/sessions/<id> -i  # sign one device out: 204
  curl -s -b jar -H "authorization: Bearer $TOKEN" -X POST ${base}/sessions/revoke-others   # sign out every other device
  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/sessions/history            # your recent sign-ins
  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/sessions/alerts             # "Was this you?" (sign in from another browser first)
  curl -s -b jar -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"answer":"no"}' ${base}/sessions/alerts/<id>   # sign it out
  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/admin/dashboard/overview    # the dashboard's data, as alice (403 for bob)
  # refresh: a new refresh cookie in ./jar, the new access token in $TOKEN
  TOKEN=$(curl -s -b jar -c jar -H 'x-requested-with: curl' -X POST ${base}/refresh | node -pe 'JSON.parse(require("fs").readFileSync(0)).accessToken')
  curl -s -b jar -H "authorization: Bearer $TOKEN" -X POST ${base}/logout -i           # 204
  curl -s -b jar -H "authorization: Bearer $TOKEN" ${base}/me                          # 401 now

  # monitoring: a login from Paris then one from Sydney is impossible travel (locations: DB-IP, CC BY 4.0)
  curl -s -H 'content-type: application/json' -H 'x-forwarded-for: ${DEMO_ADDRESSES.paris}' -d '{"username":"bob","password":"demo-password"}' ${base}/login
  # the Sydney sign-in is challenged: its session must pass the one-time code printed in this log first
  SYD=$(curl -s -c jar-syd -H 'content-type: application/json' -H 'x-forwarded-for: ${DEMO_ADDRESSES.sydney}' -d '{"username":"bob","password":"demo-password"}' ${base}/login | node -pe 'JSON.parse(require("fs").readFileSync(0)).accessToken')
  curl -s -b jar-syd -H "authorization: Bearer $SYD" ${base}/me                       # 401 FST_SESSION_GUARD_STEP_UP_REQUIRED
  curl -s -b jar-syd -H "authorization: Bearer $SYD" -H 'content-type: application/json' -d '{"code":"<the code>"}' ${base}/step-up
  curl -s -b jar-syd -H "authorization: Bearer $SYD" ${base}/me                       # 200 now
  for i in $(seq 10); do curl -s -o /dev/null -w '%{http_code} ' -H 'content-type: application/json' -d '{"username":"alice","password":"wrong"}' ${base}/login; done; echo

  # /metrics and /health answer this machine only (loopback, not forwarded by a proxy); anyone else gets a 404
  curl -s ${base}/metrics | grep -E 'anomalies|lockouts'
  curl -s ${base}/health
`
}

/* c8 ignore start -- runs only when started as a program */
if (require.main === module) {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  buildServer().then(async (app) => {
    await app.listen({ port, host })
    console.log(banner(`http://${host}:${port}`, process.pid))
  }).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
/* c8 ignore stop */
