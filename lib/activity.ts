import type { FastifyRequest } from 'fastify'
import type { ClientObserver } from './devices/client.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import { activityAt, type Activity, type Lifetime, type SessionRecord } from './session.js'

/** What a request of a live session must record, or that an anomaly rule refused it. */
export type Observation = { readonly refused: false, readonly activity: Activity } | { readonly refused: true }

/**
 * Observes a request of a live session: what changed about its client, what
 * the on-request anomaly rules make of that, and so the activity to record
 * (`activityAt`, the one rule beside the record).
 */
export class ActivityObserver {
  readonly #client: ClientObserver
  readonly #anomalies: AnomalyDetector

  constructor ({ client, anomalies }: { client: ClientObserver, anomalies: AnomalyDetector }) {
    this.#client = client
    this.#anomalies = anomalies
  }

  async observe (request: FastifyRequest, session: SessionRecord, now: number, lifetime: Lifetime): Promise<Observation> {
    const changes = await this.#client.changes(session, request)
    if (changes === undefined) return { refused: false, activity: activityAt(session, now, lifetime) }
    const verdict = await this.#anomalies.onRequest(request, session, changes)
    if (verdict.revoke) return { refused: true }
    return { refused: false, activity: activityAt(session, now, lifetime, changes, verdict.flags) }
  }
}
