import type { FastifyBaseLogger } from 'fastify'
import { UnauthorizedError } from './errors.js'
import type { EventSubject, SessionEventStream } from './monitoring/events.js'

/**
 * The one 401 path: the precise reason goes to the event stream (and so to
 * the log and the metrics), the client gets `FST_SESSION_GUARD_UNAUTHORIZED`
 * whatever failed, so the answer tells an attacker nothing. Returns the error
 * for the caller to throw, after it has added what its route owes the client
 * (a challenge header, cleared cookies).
 */
export function refusal (events: SessionEventStream, log: FastifyBaseLogger, now: number, reason: string, subject?: EventSubject): Error {
  events.publish(log, 'auth.rejected', now, subject, { reason })
  return new UnauthorizedError()
}
