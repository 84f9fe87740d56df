import type * as OpenTelemetry from '@opentelemetry/api'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../errors.js'
import type { GuardOutcome } from './prometheus.js'

type Check = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/** The span around each guard check, and its attribute. */
export const GUARD_SPAN = 'session_guard.check'
export const OUTCOME_ATTRIBUTE = 'session_guard.outcome'

/**
 * A tracer from `@opentelemetry/api` when the app has it installed (an
 * optional peer dependency), else `undefined`: without it the guard runs bare.
 * With the API but no SDK registered, the tracer is the API's no-op one.
 */
export function loadTracer (load: () => unknown = () => require('@opentelemetry/api')): OpenTelemetry.Tracer | undefined {
  let api: typeof OpenTelemetry
  try {
    api = load() as typeof OpenTelemetry
  } catch {
    return undefined
  }
  return api.trace.getTracer('fastify-session-guard')
}

/** What a guard check that threw `err` counts as: a refusal (401), or a failure (the store's 503, a bug). */
export function outcomeOf (err: unknown): GuardOutcome {
  return err instanceof UnauthorizedError ? 'rejected' : 'error'
}

/**
 * The guard, timed into the latency histogram and traced in a span of its own
 * (`session_guard.check`, with `session_guard.outcome`), for each of the two
 * the app has. The span says nothing of the user or the session.
 */
export function instrumentGuard<G extends Check> (guard: G, { time, tracer }: { time?: (() => (outcome: GuardOutcome) => void) | undefined, tracer?: OpenTelemetry.Tracer | undefined }): G {
  if (time === undefined && tracer === undefined) return guard
  const timed = time === undefined
    ? guard
    : async function requireSession (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const end = time()
      try {
        await guard(request, reply)
      } catch (err) {
        end(outcomeOf(err))
        throw err
      }
      end('accepted')
    }
  if (tracer === undefined) return timed as G
  return async function requireSession (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await tracer.startActiveSpan(GUARD_SPAN, async (span) => {
      try {
        await timed(request, reply)
        span.setAttribute(OUTCOME_ATTRIBUTE, 'accepted')
      } catch (err) {
        const outcome = outcomeOf(err)
        span.setAttribute(OUTCOME_ATTRIBUTE, outcome)
        // A refusal is the guard doing its job; only a failure marks the span as an error.
        if (outcome === 'error') {
          span.recordException(err as Error)
          span.setStatus({ code: 2 /* SpanStatusCode.ERROR */, message: (err as Error).message })
        }
        throw err
      } finally {
        span.end()
      }
    })
  } as G
}
