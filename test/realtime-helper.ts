import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'
import sessionGuard, { type SessionEndReason, type SessionGuardOptions, type SessionWatch } from '../lib/index.js'
import { SECRET, TestClock } from './helper.js'

/**
 * An app listening on a free port with a WebSocket route (`GET /ws`, the token
 * in `Sec-WebSocket-Protocol`) and an SSE route (`GET /events`, the token in
 * the query), both guarded and watched; `POST /login` for any `userId`.
 */
export const PROTOCOL = 'session-guard'

/** The token in `Sec-WebSocket-Protocol: session-guard, <token>`, as a browser's `new WebSocket(url, ['session-guard', token])` sends it. */
export function fromProtocol (request: FastifyRequest): string | undefined {
  const protocols = request.headers['sec-websocket-protocol']?.split(',').map((value) => value.trim())
  return protocols?.[0] === PROTOCOL ? protocols[1] : undefined
}

/** The token in `?access_token=`, for an `EventSource`. */
export function fromQuery (request: FastifyRequest): string | undefined {
  return (request.query as { access_token?: string }).access_token
}

export interface Realtime {
  app: FastifyInstance
  clock: TestClock
  base: string
  host: string
  login: (userId: string) => Promise<{ accessToken: string, sessionId: string, cookie: string }>
  ended: SessionEndReason[]
  watches: SessionWatch[]
  /** The server side of each watched connection. */
  sockets: Socket[]
}

export async function realtime (
  t: Test,
  options: Partial<SessionGuardOptions> = {},
  every: string | number = 20,
  routes: (app: FastifyInstance) => void = () => {}
): Promise<Realtime> {
  const clock = new TestClock()
  const ended: SessionEndReason[] = []
  const watches: SessionWatch[] = []
  const sockets: Socket[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, clock: clock.read, secureCookies: false, development: true, ...options })
  await app.register(websocket)
  app.post<{ Body: { userId: string } }>('/login', async (request, reply) => {
    const { accessToken, session } = await reply.issueSession(request.body)
    return { accessToken, sessionId: session.id }
  })
  app.get('/ws', { websocket: true, preHandler: app.requireSession, config: { extractToken: fromProtocol } }, (socket, request) => {
    socket.send(`hello ${request.authSession?.userId ?? ''}`)
    sockets.push(request.raw.socket)
    watches.push(request.watchSession({
      every,
      onEnd (reason) {
        ended.push(reason)
        socket.close(4401, `session ${reason}`)
      }
    }))
  })
  app.get('/events', { preHandler: app.requireSession, config: { extractToken: fromQuery } }, (request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    // `retry`: a browser reconnects soon after the stream ends, and finds itself refused.
    reply.raw.write(`retry: 200\ndata: hello ${request.authSession?.userId ?? ''}\n\n`)
    sockets.push(request.raw.socket)
    watches.push(request.watchSession({
      every,
      onEnd (reason) {
        ended.push(reason)
        reply.raw.end(`event: end\ndata: ${reason}\n\n`)
      }
    }))
  })
  routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const host = `127.0.0.1:${(app.server.address() as AddressInfo).port}`

  async function login (userId: string): Promise<{ accessToken: string, sessionId: string, cookie: string }> {
    const response = await app.inject({ method: 'POST', url: '/login', payload: { userId } })
    const fingerprint = (response.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === 'sg-fp')
    return { ...response.json(), cookie: `sg-fp=${fingerprint?.value ?? ''}` }
  }
  return { app, clock, base: `http://${host}`, host, login, ended, watches, sockets }
}
