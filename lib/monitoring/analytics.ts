import type { SessionStore } from '../stores/store.js'
import { bump } from './metrics.js'

/** What `app.sessions.analytics()` reports about the live sessions. */
export interface SessionAnalytics {
  /** Sessions looked at. */
  sessions: number
  users: number
  /** How many users hold 1, 2, 3 … sessions. */
  sessionsPerUser: Record<number, number>
  /** Share of sessions (0–1) by device type and by browser. */
  deviceTypes: Record<string, number>
  browsers: Record<string, number>
  /** Sessions by the country of their location (`'unknown'` without one). */
  countries: Record<string, number>
  /** Age of the live sessions (ms since login), from a uniform sample of at most `sampleSize`. */
  durationMs: { p50: number, p90: number, p99: number, max: number }
}

export interface AnalyticsOptions {
  /**
   * Sessions read per batch; the scan yields to the event loop between batches.
   * @default 1000
   */
  batchSize?: number
  /**
   * Session ages kept for the percentiles (reservoir sampling keeps memory flat).
   * @default 10_000
   */
  sampleSize?: number
}

/**
 * Streams the store (`scan`) in batches, so a large store never holds the event
 * loop: counts are exact, duration percentiles come from a reservoir sample.
 */
export async function analyse (store: SessionStore, now: number, { batchSize = 1000, sampleSize = 10_000 }: AnalyticsOptions = {}): Promise<SessionAnalytics> {
  const perUser = new Map<string, number>()
  const deviceTypes: Record<string, number> = {}
  const browsers: Record<string, number> = {}
  const countries: Record<string, number> = {}
  const sample: number[] = []
  let sessions = 0
  let max = 0
  for await (const batch of store.scan(batchSize, now)) {
    for (const session of batch) {
      sessions++
      perUser.set(session.userId, (perUser.get(session.userId) ?? 0) + 1)
      bump(deviceTypes, session.device?.type ?? 'unknown')
      bump(browsers, session.device?.browser.name ?? 'unknown')
      bump(countries, session.location?.country ?? 'unknown')
      const age = now - session.createdAt
      max = Math.max(max, age)
      // Algorithm R: each session ends up in the sample with the same probability.
      if (sample.length < sampleSize) sample.push(age)
      else {
        const slot = Math.floor(Math.random() * sessions)
        if (slot < sampleSize) sample[slot] = age
      }
    }
  }
  const sessionsPerUser: Record<number, number> = {}
  for (const n of perUser.values()) sessionsPerUser[n] = (sessionsPerUser[n] ?? 0) + 1
  sample.sort((a, b) => a - b)
  return {
    sessions,
    users: perUser.size,
    sessionsPerUser,
    deviceTypes: shares(deviceTypes, sessions),
    browsers: shares(browsers, sessions),
    countries,
    durationMs: { p50: percentile(sample, 0.5), p90: percentile(sample, 0.9), p99: percentile(sample, 0.99), max }
  }
}

function shares (counts: Record<string, number>, total: number): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([key, n]) => [key, n / total]))
}

/** Nearest-rank percentile of sorted values; 0 for none. */
function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number
}
