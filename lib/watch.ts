import type { ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { InvalidOptionError, NoSessionError } from './errors.js'
import { isChallenged, isLive, type Clock, type SessionRecord } from './session.js'
import type { FailClosedStore } from './stores/fail-closed.js'
import { duration, section, type Duration, type OptionNames } from './validate.js'

/**
 * Why a watched session ended: revoked (logout, another device, an admin), expired, challenged (`'step_up'`:
 * an anomaly rule asks for a step-up, and the route does not allow challenged sessions), or the store could not say.
 */
export type SessionEndReason = 'revoked' | 'expired' | 'step_up' | 'unavailable'

/** What `request.watchSession()` takes. */
export interface WatchSessionOptions {
  /**
   * How often the session is read back from the store while the connection lives.
   * @default '30s'
   */
  every?: Duration
  /**
   * Called once, when a check finds the session gone or challenged: close the WebSocket
   * (`socket.close(4401, reason)`) or end the event stream (`reply.raw.end()`).
   * A store failure ends the session too (`'unavailable'`): the guard fails closed.
   */
  onEnd: (reason: SessionEndReason) => void
}

/**
 * A running watch. It stops by itself after `onEnd`, when the request's response is done (sent, ended, or its
 * connection gone; for a WebSocket, when the socket closes), and when the app closes.
 */
export interface SessionWatch {
  /** Checks now (after the app hears of a revocation on its own channel, say); resolves whether the session is live. */
  check: () => Promise<boolean>
  /** Stops the watch without calling `onEnd`; a `check()` after it resolves `false`. */
  stop: () => void
}

const DEFAULT_EVERY = '30s'
const WATCH_OPTION_NAMES: OptionNames<WatchSessionOptions> = { every: true, onEnd: true }

/** The raw response of each request the guard let in: its watch, if any, ends with it. */
const responses = new WeakMap<FastifyRequest, ServerResponse>()

/** The guard let `request` in: a watch of it will stop when `reply`'s raw response is done. */
export function admitted (request: FastifyRequest, reply: FastifyReply): void {
  responses.set(request, reply.raw)
}

/**
 * The re-check of a long-lived connection (WebSocket, server-sent events): the
 * guard let it in once, and the session may be revoked or expire while it is
 * open. Each watch reads its session back on an `unref()`ed interval, calls
 * `onEnd` once it is gone, and stops; the app's `onClose` stops them all.
 */
export class SessionWatches {
  readonly #store: FailClosedStore
  readonly #clock: Clock
  readonly #running = new Set<() => void>()

  constructor ({ store, clock }: { store: FailClosedStore, clock: Clock }) {
    this.#store = store
    this.#clock = clock
  }

  /** Watches the session the guard set on `request`. Throws `FST_SESSION_GUARD_NO_SESSION` before the guard. */
  watch (request: FastifyRequest, value: WatchSessionOptions): SessionWatch {
    const response = responses.get(request)
    if (request.authSession === null || response === undefined) throw new NoSessionError()
    const options = section(value, WATCH_OPTION_NAMES, 'watchSession')
    const everyMs = duration(options.every ?? DEFAULT_EVERY, 'watchSession.every')
    const onEnd = options.onEnd
    if (typeof onEnd !== 'function') throw new InvalidOptionError('watchSession.onEnd', 'must be a function (reason) => void')

    let last: SessionRecord = request.authSession
    // The guard's rule: a challenged session keeps only the routes that allow it.
    const allowChallenged = request.routeOptions.config.allowChallenged === true
    let active = true
    const stop = (): void => {
      active = false
      clearInterval(timer)
      this.#running.delete(stop)
      response.off('close', stop)
    }
    const end = (reason: SessionEndReason): false => {
      if (active) {
        stop()
        onEnd(reason)
      }
      return false
    }
    const check = async (): Promise<boolean> => {
      if (!active) return false
      const now = this.#clock()
      let current
      try {
        // The fail-closed store has logged the failure; the connection cannot prove its session any more.
        current = await this.#store.get(last.id, now)
      } catch {
        return end('unavailable')
      }
      if (current === undefined) return end(isLive(last, now) ? 'revoked' : 'expired')
      if (!allowChallenged && isChallenged(current)) return end('step_up')
      last = current
      return active
    }
    // A store failure ends the watch; only the app's own `onEnd` can throw.
    const timer = setInterval(() => { check().catch((err: unknown) => request.log.error({ err }, 'watchSession: onEnd threw')) }, everyMs).unref()
    // The response, not the connection: on a keep-alive connection the socket outlives each request, and a
    // watch of a poll or of a finite stream must end with its own answer. A response emits 'close' once it is
    // done (sent or ended) or its connection is gone; a WebSocket's (the one `@fastify/websocket` builds for the
    // upgrade, on the upgraded socket) is hijacked and never finishes: it closes with the socket.
    response.once('close', stop)
    this.#running.add(stop)
    // Gone already (it closed while the route was still reading the store, say), or answered before the watch
    // began: the event it would stop on has fired.
    if (request.raw.socket.destroyed || response.writableEnded) stop()
    return { check, stop }
  }

  /** Stops every watch (the app is closing). */
  close (): void {
    for (const stop of this.#running) stop()
  }
}
