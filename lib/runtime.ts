import type { AnomalyDetector } from './monitoring/anomaly.js'
import type { ClientObserver } from './devices/client.js'
import type { SessionCookies } from './http/cookies.js'
import type { SessionEventStream } from './monitoring/events.js'
import type { SessionMetrics } from './monitoring/metrics.js'
import type { Lifetime, NormalizedOptions } from './options.js'
import type { SessionStore } from './stores/store.js'
import type { AccessTokens, LimitTickets, RefreshTokens } from './tokens/tokens.js'

/** What the guard, the lifecycle and the manager share: built once per registration in `index.ts`. */
export interface Runtime {
  readonly options: NormalizedOptions
  readonly store: SessionStore
  readonly accessTokens: AccessTokens
  readonly refreshTokens: RefreshTokens
  readonly tickets: LimitTickets
  readonly cookies: SessionCookies
  readonly events: SessionEventStream
  readonly client: ClientObserver
  readonly metrics: SessionMetrics
  readonly anomalies: AnomalyDetector
  /** The idle and absolute lifetimes of a session, by whether it is remembered. */
  lifetime (remembered: boolean): Lifetime
}
