import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { sha256 } from './crypto.js'

/** Why a session was revoked. */
export type RevocationReason = 'user' | 'admin' | 'limit' | 'regenerate' | 'reuse' | 'password-change'

/** Every event the plugin emits, by name. */
export interface SessionEvents {
  'session.created': { userId: string, sessionId: string, remembered: boolean }
  'session.refreshed': { userId: string, sessionId: string, rotations: number }
  'session.revoked': { userId: string, sessionId: string, reason: RevocationReason }
  'session.evicted': { userId: string, sessionId: string }
  'session.expired': { userId: string, sessionId: string, reason: 'idle' | 'absolute' }
  'auth.rejected': { reason: string, userId?: string, sessionId?: string }
  'refresh.reuse_detected': { userId: string, sessionId: string }
}

export type SessionEventName = keyof SessionEvents

/** An event as listeners receive it. Never carries a token, fingerprint or refresh token. */
export type SessionEvent<N extends SessionEventName = SessionEventName> = {
  [K in N]: { type: K, time: number } & SessionEvents[K]
}[N]

const LEVELS: Record<SessionEventName, 'info' | 'warn'> = {
  'session.created': 'info',
  'session.refreshed': 'info',
  'session.revoked': 'info',
  'session.evicted': 'info',
  'session.expired': 'info',
  'auth.rejected': 'info',
  'refresh.reuse_detected': 'warn'
}

/**
 * The plugin's event stream: each event is logged (session ids hashed) and
 * handed to listeners. A listener that throws is logged and never breaks the
 * request that caused the event.
 */
export class SessionEventStream extends EventEmitter<{ [K in SessionEventName]: [SessionEvent<K>] }> {
  readonly #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    super({ captureRejections: false })
    this.#log = log
  }

  publish<N extends SessionEventName> (log: FastifyBaseLogger | undefined, type: N, time: number, fields: SessionEvents[N]): void {
    const event = { type, time, ...fields } as SessionEvent<N>
    const logged: Record<string, unknown> = { event: type, ...fields }
    if (typeof logged.sessionId === 'string') logged.sessionId = sha256(logged.sessionId).slice(0, 16)
    ;(log ?? this.#log)[LEVELS[type]](logged, `session guard: ${type}`)
    try {
      // EventEmitter's typing cannot follow a generic key; the map above ties them.
      ;(this.emit as (name: string, value: unknown) => boolean)(type, event)
    } catch (err) {
      this.#log.error({ err, event: type }, 'session guard: an event listener threw')
    }
  }
}
