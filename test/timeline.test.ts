import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { DURATION_BOUNDS_MS, parseTimelineOptions, Timeline, type TimelinePolicy } from '../lib/monitoring/timeline.js'
import { historyRecord } from '../lib/monitoring/history.js'
import type { SessionEvent } from '../lib/monitoring/events.js'
import { build, MINUTE, registrationError, settle, TestClock } from './helper.js'

const POLICY: TimelinePolicy = { intervalMs: MINUTE, points: 3 }

function event (fields: Record<string, unknown>): SessionEvent {
  return { version: 1, userId: 'u', ...fields } as unknown as SessionEvent
}

function timeline (t: Test, policy: TimelinePolicy = POLICY, stats: () => Promise<{ sessions: number }> = async () => ({ sessions: 7 })) {
  const clock = new TestClock()
  const warnings: unknown[] = []
  const log = Object.assign(Fastify().log, { warn: (...args: unknown[]) => { warnings.push(args) } })
  const series = new Timeline({ clock: clock.read, stats: stats as never, log }, policy)
  t.teardown(() => series.stop())
  return { clock, series, warnings }
}

t.test('counts each event in its interval, and the window\'s figures by country, device type and rule', async (t) => {
  const { clock, series } = timeline(t)
  const now = clock.now
  series.record(event({ type: 'session.created', time: now, location: { country: 'FR' }, device: { type: 'desktop', name: 'Firefox on Linux' } }))
  series.record(event({ type: 'session.created', time: now, location: { country: 'FR' } }))
  series.record(event({ type: 'session.created', time: now + MINUTE }))
  series.record(event({ type: 'login.failed', time: now + MINUTE, failures: 1 }))
  series.record(event({ type: 'login.locked', time: now + MINUTE, scope: 'username', retryAfterMs: 1000 }))
  series.record(event({ type: 'anomaly.detected', time: now + MINUTE, rule: 'new_country', decision: 'flag', at: 'login', detail: {} }))
  series.record(event({ type: 'session.revoked', time: now + MINUTE, reason: 'user', durationMs: 4 * MINUTE }))
  series.record(event({ type: 'session.evicted', time: now + MINUTE }))
  series.record(event({ type: 'session.expired', time: now + MINUTE, reason: 'idle', durationMs: 30 * 86_400_000 }))
  series.record(event({ type: 'session.refreshed', time: now + MINUTE, rotations: 1 }))
  clock.advance(MINUTE + 1)
  const report = await series.read()
  t.same(report, {
    intervalMs: MINUTE,
    points: [
      { start: now - MINUTE, activeSessions: null, signIns: 0, failedLogins: 0, lockouts: 0, anomalies: 0, ended: 0 },
      { start: now, activeSessions: null, signIns: 2, failedLogins: 0, lockouts: 0, anomalies: 0, ended: 0 },
      { start: now + MINUTE, activeSessions: 7, signIns: 1, failedLogins: 1, lockouts: 1, anomalies: 1, ended: 3 }
    ],
    signInsByCountry: { FR: 2, unknown: 1 },
    signInsByDeviceType: { desktop: 1, unknown: 2 },
    anomaliesByRule: { new_country: 1 },
    durations: DURATION_BOUNDS_MS.map((bound, i) => ({ upToMs: bound === Infinity ? null : bound, count: i === 1 || i === 8 ? 1 : 0 }))
  }, 'three sessions ended, two with a duration: one of 4 minutes (≤ 5 min), one of 30 days (the last bucket)')
})

t.test('a bounded ring: intervals older than the window go, a late event for them is dropped', async (t) => {
  const { clock, series } = timeline(t)
  const first = clock.now
  series.record(event({ type: 'session.created', time: first }))
  clock.advance(3 * MINUTE)
  series.record(event({ type: 'session.created', time: clock.now }))
  series.record(event({ type: 'session.created', time: first }))
  const report = await series.read()
  t.same(report?.points.map((point) => point.start), [first + MINUTE, first + 2 * MINUTE, first + 3 * MINUTE], 'the window ends now')
  t.same(report?.points.map((point) => point.signIns), [0, 0, 1], 'the first interval is gone, and so is the late event')
  // An event for an interval still in the window, but written after a newer one, is kept.
  series.record(event({ type: 'login.failed', time: first + MINUTE, failures: 1 }))
  t.same((await series.read())?.points.map((point) => point.failedLogins), [1, 0, 0])
})

t.test('a store that fails a sample is logged, and the point stays unsampled', async (t) => {
  const { series, warnings } = timeline(t, POLICY, async () => { throw new Error('down') })
  const report = await series.read()
  t.same(report?.points.map((point) => point.activeSessions), [null, null, null])
  t.equal(warnings.length, 1)
})

t.test('timeline: false keeps nothing and never samples', async (t) => {
  let sampled = 0
  const { series } = timeline(t, false, async () => { sampled++; return { sessions: 1 } })
  t.equal(series.enabled, false)
  series.start()
  series.record(event({ type: 'session.created', time: 0 }))
  await series.sample()
  t.equal(await series.read(), undefined)
  t.equal(sampled, 0)
})

t.test('the timer samples the store once per interval, and stop() ends it', async (t) => {
  let sampled = 0
  const { series } = timeline(t, { intervalMs: 5, points: 3 }, async () => { sampled++; return { sessions: 2 } })
  series.start()
  series.start()
  // Let the real interval fire: this test is about the timer itself.
  await new Promise((resolve) => setTimeout(resolve, 60))
  series.stop()
  const seen = sampled
  t.ok(seen >= 1, `sampled ${seen} times`)
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(sampled, seen, 'no sample after stop()')
})

t.test('options: defaults, false, and bad values refused by name', async (t) => {
  t.same(parseTimelineOptions(undefined), { intervalMs: 5 * MINUTE, points: 288 })
  t.same(parseTimelineOptions({ interval: '1m', points: 60 }), { intervalMs: MINUTE, points: 60 })
  t.equal(parseTimelineOptions(false), false)
  for (const [timeline, name] of [
    [{ points: 0 }, 'timeline.points'],
    [{ points: 10_001 }, 'timeline.points'],
    [{ interval: 'soon' }, 'timeline.interval'],
    [{ width: 1 }, 'timeline.width'],
    ['1m', 'timeline']
  ] as const) {
    const err = await registrationError({ secret: 'a-test-secret-that-is-long-enough-0123456789', timeline })
    t.equal(err?.code, 'FST_SESSION_GUARD_INVALID_OPTION', JSON.stringify(timeline))
    t.match(err?.message, name)
  }
})

t.test('a session\'s end records how long it lived: in the event, the history and the timeline', async (t) => {
  const h = await build(t, { timeline: { interval: '1m', points: 60 } })
  const events: SessionEvent[] = []
  h.app.sessions.events.on('event', (e) => events.push(e))
  const alice = await h.login('alice')
  h.clock.advance(10 * MINUTE)
  const logout = await h.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${alice.accessToken}`, cookie: alice.fingerprint } })
  t.equal(logout.statusCode, 204)
  await settle()
  t.match(events.find((e) => e.type === 'session.revoked'), { reason: 'user', durationMs: 10 * MINUTE })
  const [ended] = await h.app.sessions.history('alice', { limit: 1 })
  t.same(ended?.detail, { reason: 'user', durationMs: 10 * MINUTE }, 'the end entry keeps the duration')
  const report = await h.app.sessions.timeline()
  t.equal(report?.durations.find((bucket) => bucket.upToMs === 15 * MINUTE)?.count, 1, 'counted under 15 minutes')
  t.equal(report?.points.at(-1)?.activeSessions, 0, 'sampled at read: no live session left')
  t.equal(report?.points.reduce((n, point) => n + point.signIns, 0), 1)
  t.equal(await (await build(t, { timeline: false })).app.sessions.timeline(), undefined)
  // An end published about a user alone (no session record) has no duration to tell.
  h.app.sessions.events.publish(undefined, 'session.revoked', h.clock.now, { userId: 'alice' }, { reason: 'admin' })
  await settle()
  t.notOk('durationMs' in (events.at(-1) as object), 'no duration without the session\'s start')
})

t.test('the history\'s end entries keep durationMs only when the event had it', async (t) => {
  t.same(historyRecord(event({ type: 'session.evicted', time: 1, durationMs: 5 })).detail, { durationMs: 5 })
  t.equal(historyRecord(event({ type: 'session.evicted', time: 1 })).detail, undefined)
  t.same(historyRecord(event({ type: 'session.revoked', time: 1, reason: 'admin' })).detail, { reason: 'admin' })
})
