import type { FastifyRequest } from 'fastify'
import type { ClientObserver } from './devices/client.js'
import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { SessionEventStream } from './monitoring/events.js'
import { activityAt, type Activity, type Lifetime, type SessionRecord } from './session.js'
import type { SessionStore } from './stores/store.js'

/** What a request of a live session must record, or that an anomaly rule refused it (and the session is revoked). */
export type Observation = { readonly refused: false, readonly activity: Activity } | { readonly refused: true }

/**
 * Observes a request of a live session, on the guard and on the refresh path
 * alike: what changed about its client, what the on-request anomaly rules make
 * of that, and so the activity to record (`activityAt`, the one rule beside the
 * record). A `'revoke'` verdict revokes the session here, for both.
 */
export class ActivityObserver {
  readonly #client: ClientObserver
  readonly #anomalies: AnomalyDetector
  readonly #store: SessionStore
  readonly #events: SessionEventStream

  constructor ({ client, anomalies, store, events }: { client: ClientObserver, anomalies: AnomalyDetector, store: SessionStore, events: SessionEventStream }) {
    this.#client = client
    this.#anomalies = anomalies
    this.#store = store
    this.#events = events
  }

  async observe (request: FastifyRequest, session: SessionRecord, now: number, lifetime: Lifetime): Promise<Observation> {
    const changes = await this.#client.changes(session, request)
    if (changes === undefined) return { refused: false, activity: activityAt(session, now, lifetime) }
    const verdict = await this.#anomalies.onRequest(request, session, changes)
    if (verdict.revoke) {
      await this.#revokeForAnomaly(request, session, now)
      return { refused: true }
    }
    const recorded = verdict.travelAnchor === undefined ? changes : { ...changes, travelAnchor: verdict.travelAnchor }
    return { refused: false, activity: activityAt(session, now, lifetime, recorded, verdict.flags) }
  }

  async #revokeForAnomaly (request: FastifyRequest, session: SessionRecord, now: number): Promise<void> {
    if (await this.#store.revoke(session.id, now) !== undefined) {
      this.#events.publish(request.log, 'session.revoked', now, session, { reason: 'anomaly' })
    }
  }
}
