/**
 * Two instances of one app sharing sessions through Redis, as behind a load
 * balancer: log in on one, use the session on the other, log out on either.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/redis.ts
 *
 *   curl -si -X POST localhost:3001/login -H 'content-type: application/json' -d '{"userId":"alice"}'
 *   # then, with the accessToken and the sg-fp cookie from that answer:
 *   curl -s localhost:3002/me -H "authorization: Bearer $TOKEN" -b "sg-fp=$FP"
 *   curl -s -X POST localhost:3002/logout -H "authorization: Bearer $TOKEN" -b "sg-fp=$FP"
 *   curl -s localhost:3001/me -H "authorization: Bearer $TOKEN" -b "sg-fp=$FP"   # 401 at once
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import sessionGuard, { toView } from '../lib/index.js'
import { redisStore } from '../lib/stores/redis/index.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
// A demo secret: use a real one (at least 32 random bytes) from your secrets store.
const SECRET = process.env.SESSION_SECRET ?? 'example-only-secret-change-me-0123456789abcdef'

/** One instance, not listening yet. `port` names it in its answers and logs. */
export async function buildInstance (
  port: number,
  { prefix = 'example:', logger = { level: 'info', base: { instance: port } } }: { prefix?: string, logger?: FastifyServerOptions['logger'] } = {}
): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(sessionGuard, {
    secret: SECRET,
    // Each instance owns its connection and closes it with the app. The local
    // cache spares most guarded requests a round trip; revocations still reach
    // every instance at once through the store's channel.
    store: redisStore({ connection: REDIS_URL, prefix, localCache: true }),
    maxSessionsPerUser: 5,
    // Plain http on localhost only: production keeps secure cookies.
    secureCookies: false,
    development: true
  })

  // Stands in for the app's real login (password, passkey…): any user id is accepted here. The claims
  // come from the app's own records, never from the client, so the body names nothing else.
  app.post<{ Body: { userId: string, remember?: boolean } }>('/login', {
    schema: {
      body: {
        type: 'object',
        required: ['userId'],
        additionalProperties: false,
        properties: { userId: { type: 'string', minLength: 1, maxLength: 64 }, remember: { type: 'boolean' } }
      }
    }
  }, async (request, reply) => {
    const { userId, remember = false } = request.body
    const { accessToken, refreshToken, session } = await reply.issueSession({ userId, remember })
    return { accessToken, refreshToken, sessionId: session.id, servedBy: port }
  })
  // The public view of a session, never the record itself, which holds hashes.
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({
    user: request.user, session: toView(request.authSession!, request.authSession!.id), servedBy: port
  }))
  app.get('/sessions', { preHandler: app.requireSession }, async (request) =>
    (await app.sessions.list(request.authSession!.userId)).map((session) => toView(session, request.authSession!.id)))
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return reply.code(204).send()
  })
  app.post('/refresh', async (request, reply) => {
    const { accessToken, refreshToken } = await reply.refreshSession()
    return { accessToken, refreshToken }
  })
  return app
}

/* c8 ignore start -- runs only when started as a program */
if (require.main === module) {
  Promise.all([3001, 3002].map(async (port) => {
    const app = await buildInstance(port)
    await app.listen({ host: '127.0.0.1', port })
    return app
  })).then((apps) => {
    const stop = async (): Promise<void> => {
      await Promise.all(apps.map(async (app) => await app.close()))
    }
    process.once('SIGINT', () => { stop().catch(console.error) })
    process.once('SIGTERM', () => { stop().catch(console.error) })
  }).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
/* c8 ignore stop */
