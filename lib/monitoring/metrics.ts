import type { SessionEvent } from './events.js'
import type { StoreStats } from '../stores/store.js'

/** Counters since this instance started, by what the events said. */
export interface EventCounts {
  created: number
  refreshed: number
  revoked: Record<string, number>
  evicted: number
  expired: Record<string, number>
  rejected: Record<string, number>
  reuseDetected: number
  loginFailures: number
  lockouts: Record<string, number>
  anomalies: Record<string, number>
}

/** What the Prometheus text shows. */
export interface PrometheusOptions {
  /**
   * Count refused requests by their precise reason (`auth_rejected_total{reason}`).
   * Off by default: whoever reads the metrics could otherwise tell, by probing
   * with a stolen token, which refusal it got (a live session, or a dead one),
   * which the one 401 answer hides. `stats()` keeps the reasons for the app's
   * own code.
   * @default false
   */
  rejectionReasons?: boolean
}

/**
 * Counts what the event stream reports. Fed synchronously by the stream, so
 * `stats()` and `/metrics` agree with the events at any moment. Per instance:
 * with several instances, sum them (as Prometheus does).
 */
export class SessionMetrics {
  readonly counts: EventCounts = {
    created: 0,
    refreshed: 0,
    revoked: {},
    evicted: 0,
    expired: {},
    rejected: {},
    reuseDetected: 0,
    loginFailures: 0,
    lockouts: {},
    anomalies: {}
  }

  record (event: SessionEvent): void {
    const counts = this.counts
    switch (event.type) {
      case 'session.created': counts.created++; break
      case 'session.refreshed': counts.refreshed++; break
      case 'session.revoked': bump(counts.revoked, event.reason); break
      case 'session.evicted': counts.evicted++; break
      case 'session.expired': bump(counts.expired, event.reason); break
      case 'auth.rejected': bump(counts.rejected, event.reason); break
      case 'refresh.reuse_detected': counts.reuseDetected++; break
      case 'login.failed': counts.loginFailures++; break
      case 'login.locked': bump(counts.lockouts, event.scope); break
      case 'anomaly.detected': bump(counts.anomalies, `${event.rule}:${event.decision}`); break
    }
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  prometheus (store: StoreStats | undefined, { rejectionReasons = false }: PrometheusOptions = {}): string {
    const counts = this.counts
    const lines: string[] = []
    const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string>, number]>): void => {
      lines.push(`# HELP session_guard_${name} ${help}`, `# TYPE session_guard_${name} ${type}`)
      for (const [labels, value] of samples) lines.push(`session_guard_${name}${formatLabels(labels)} ${value}`)
    }
    const labelled = (label: string, values: Record<string, number>): Array<[Record<string, string>, number]> =>
      Object.entries(values).map(([key, value]) => [{ [label]: key }, value])

    metric('store_up', 'gauge', 'Whether the session store answered the last scrape.', [[{}, store === undefined ? 0 : 1]])
    if (store !== undefined) {
      metric('active_sessions', 'gauge', 'Sessions held by the store.', [[{}, store.sessions]])
      metric('users', 'gauge', 'Users with at least one session.', [[{}, store.users]])
      metric('users_by_session_count', 'gauge', 'Users holding this many sessions.', labelled('sessions', store.sessionsPerUser))
      if (store.estimatedBytes !== undefined) metric('store_estimated_bytes', 'gauge', 'Estimated memory taken by sessions.', [[{}, store.estimatedBytes]])
      if (store.capacity !== undefined) metric('store_capacity', 'gauge', 'Most sessions the store holds.', [[{}, store.capacity]])
    }
    metric('sessions_created_total', 'counter', 'Sessions created.', [[{}, counts.created]])
    metric('sessions_refreshed_total', 'counter', 'Refresh-token rotations.', [[{}, counts.refreshed]])
    metric('sessions_revoked_total', 'counter', 'Sessions revoked, by reason.', labelled('reason', counts.revoked))
    metric('sessions_evicted_total', 'counter', 'Sessions evicted at store capacity.', [[{}, counts.evicted]])
    metric('sessions_expired_total', 'counter', 'Sessions expired, by deadline.', labelled('reason', counts.expired))
    if (rejectionReasons) metric('auth_rejected_total', 'counter', 'Requests and refreshes refused, by precise reason.', labelled('reason', counts.rejected))
    else metric('auth_rejected_total', 'counter', 'Requests and refreshes refused.', [[{}, sum(counts.rejected)]])
    metric('refresh_reuse_detected_total', 'counter', 'Older refresh tokens presented (theft).', [[{}, counts.reuseDetected]])
    metric('login_failures_total', 'counter', 'Failed logins recorded.', [[{}, counts.loginFailures]])
    metric('login_lockouts_total', 'counter', 'Logins refused while locked, by scope.', labelled('scope', counts.lockouts))
    metric('anomalies_total', 'counter', 'Anomalies detected, by rule and decision.',
      Object.entries(counts.anomalies).map(([key, value]) => {
        const [rule, decision] = key.split(':') as [string, string]
        return [{ rule, decision }, value]
      }))
    return `${lines.join('\n')}\n`
  }
}

function sum (counts: Record<string, number>): number {
  let total = 0
  for (const key in counts) total += counts[key] as number
  return total
}

/** Adds one to `counts[key]`. */
export function bump (counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

function formatLabels (labels: Record<string, string>): string {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ''
  // Label values escape backslash, double quote and newline.
  return `{${entries.map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`
}
