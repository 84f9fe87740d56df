import Fastify from 'fastify'
import { collectDefaultMetrics, Registry } from 'prom-client'
import t from 'tap'
import sessionGuard, { memoryStore } from '../lib/index.js'
import { loadPromClient } from '../lib/monitoring/prometheus.js'
import { build, SECRET } from './helper.js'

interface Sample { name: string, labels: Record<string, string>, value: number }

/**
 * Parses the Prometheus text format (0.0.4) strictly: every line is empty, a HELP, a
 * TYPE or a sample; every sample belongs to the family whose TYPE came before
 * it (a histogram's `_bucket`, `_sum`, `_count` included); label values are
 * escaped; no series appears twice. Throws on anything else.
 */
function parseExposition (text: string): { types: Map<string, string>, samples: Sample[] } {
  if (!text.endsWith('\n')) throw new Error('the exposition ends with a newline')
  const types = new Map<string, string>()
  const samples: Sample[] = []
  const seen = new Set<string>()
  let family: string | undefined
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
  // Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes 'Nan').
  const sampleLine = new RegExp(`^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-][Ii][Nn][Ff])$`)
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue // the format ignores empty lines
    const help = new RegExp(`^# HELP (${NAME}) .*$`).exec(line)
    if (help !== null) continue
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line)
    if (type !== null) {
      if (types.has(type[1] as string)) throw new Error(`TYPE twice for ${type[1]}`)
      types.set(type[1] as string, type[2] as string)
      family = type[1]
      continue
    }
    const sample = sampleLine.exec(line)
    if (sample === null) throw new Error(`not a valid line: ${JSON.stringify(line)}`)
    const [, name, labelText = '', value] = sample as unknown as [string, string, string | undefined, string]
    const suffixes = types.get(family as string) === 'histogram' ? ['_bucket', '_sum', '_count'] : types.get(family as string) === 'summary' ? ['', '_sum', '_count'] : ['']
    if (!suffixes.some((suffix) => name === `${family as string}${suffix}`)) throw new Error(`${name} outside its family (${family})`)
    const labels: Record<string, string> = {}
    for (const [, key, raw] of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (Object.hasOwn(labels, key as string)) throw new Error(`label ${key} twice in ${line}`)
      labels[key as string] = (raw as string).replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
    }
    const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seen.has(series)) throw new Error(`series twice: ${series}`)
    seen.add(series)
    samples.push({ name, labels, value: Number(value) })
  }
  return { types, samples }
}

function find (samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
}

t.test("in the app's registry, beside collectDefaultMetrics, with its default labels: one valid exposition", async (t) => {
  const registry = new Registry()
  registry.setDefaultLabels({ service: 'shop', region: 'eu-west' })
  collectDefaultMetrics({ register: registry })
  const h = await build(t, { metrics: { registry } }, (app) => {
    app.get('/app-metrics', async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))
  })
  const alice = await h.login('alice')
  t.equal((await h.me(alice)).statusCode, 200)
  t.equal((await h.app.inject({ method: 'GET', url: '/me' })).statusCode, 401)
  await h.app.sessions.revoke(alice.sessionId)

  const response = await h.app.inject({ method: 'GET', url: '/app-metrics' })
  const { types, samples } = parseExposition(response.body)
  t.equal(types.get('process_cpu_user_seconds_total'), 'counter', "the app's default metrics are there")
  for (const [name, type] of [
    ['session_guard_store_up', 'gauge'],
    ['session_guard_active_sessions', 'gauge'],
    ['session_guard_users', 'gauge'],
    ['session_guard_users_by_session_count', 'gauge'],
    ['session_guard_store_capacity', 'gauge'],
    ['session_guard_store_estimated_bytes', 'gauge'],
    ['session_guard_store_counter_evictions', 'gauge'],
    ['session_guard_sessions_created_total', 'counter'],
    ['session_guard_sessions_refreshed_total', 'counter'],
    ['session_guard_sessions_revoked_total', 'counter'],
    ['session_guard_sessions_evicted_total', 'counter'],
    ['session_guard_sessions_expired_total', 'counter'],
    ['session_guard_auth_rejected_total', 'counter'],
    ['session_guard_refresh_reuse_detected_total', 'counter'],
    ['session_guard_login_failures_total', 'counter'],
    ['session_guard_login_lockouts_total', 'counter'],
    ['session_guard_anomalies_total', 'counter'],
    ['session_guard_guard_duration_seconds', 'histogram']
  ]) t.equal(types.get(name as string), type, `${name} is a ${type}`)

  const ours = samples.filter((sample) => sample.name.startsWith('session_guard_'))
  t.ok(ours.length > 20)
  for (const sample of ours) t.match(sample.labels, { service: 'shop', region: 'eu-west' }, `${sample.name} carries the default labels`)
  t.equal(find(samples, 'session_guard_store_up')[0]?.value, 1)
  t.equal(find(samples, 'session_guard_active_sessions')[0]?.value, 0, 'the revoked session is gone')
  t.equal(find(samples, 'session_guard_store_counter_evictions')[0]?.value, 0, 'no live counter dropped')
  t.equal(find(samples, 'session_guard_sessions_created_total')[0]?.value, 1)
  t.equal(find(samples, 'session_guard_sessions_revoked_total', { reason: 'admin' })[0]?.value, 1)
  t.equal(find(samples, 'session_guard_auth_rejected_total')[0]?.value, 1)
  t.equal(find(samples, 'session_guard_guard_duration_seconds_count', { outcome: 'accepted' })[0]?.value, 1, 'one accepted check timed')
  t.equal(find(samples, 'session_guard_guard_duration_seconds_count', { outcome: 'rejected' })[0]?.value, 1, 'one refused check timed')
  t.equal(find(samples, 'session_guard_guard_duration_seconds_bucket', { outcome: 'accepted', le: '+Inf' })[0]?.value, 1)
  t.ok(find(samples, 'session_guard_guard_duration_seconds_sum', { outcome: 'accepted' })[0]?.value as number >= 0, 'in seconds')
  t.notOk(h.app.hasRoute({ method: 'GET', url: '/metrics' }), 'no route of its own: the app serves its registry')

  await h.app.close()
  t.notOk(registry.getMetricsAsArray().some((metric) => metric.name.startsWith('session_guard_')), 'closing the app takes its metrics out')
  t.ok(registry.getSingleMetric('process_cpu_user_seconds_total'), "and leaves the app's")
})

t.test('refusal reasons are no label unless asked for', async (t) => {
  const registry = new Registry()
  const h = await build(t, { metrics: { registry } })
  const alice = await h.login('alice')
  await h.me(alice, { cookie: '__Host-sg-fp=forged' })
  await h.app.inject({ method: 'GET', url: '/me' })
  const { samples } = parseExposition(await registry.metrics())
  const rejected = find(samples, 'session_guard_auth_rejected_total')
  t.same(rejected, [{ name: 'session_guard_auth_rejected_total', labels: {}, value: 2 }], 'one count, no reason')
  t.same((await registry.getSingleMetric('session_guard_auth_rejected_total')?.get())?.values.map((value) => value.labels), [{}])

  const reasons = new Registry()
  const opted = await build(t, { metrics: { registry: reasons, rejectionReasons: true } })
  const bob = await opted.login('bob')
  await opted.me(bob, { cookie: '__Host-sg-fp=forged' })
  await opted.app.inject({ method: 'GET', url: '/me' })
  opted.app.sessions.events.publish(undefined, 'auth.rejected', 0, undefined, { reason: 'a"b\\c\nd' })
  const labelled = find(parseExposition(await reasons.metrics()).samples, 'session_guard_auth_rejected_total')
  t.same(labelled.map((sample) => [sample.labels.reason, sample.value]).sort(), [['a"b\\c\nd', 1], ['malformed_fingerprint', 1], ['missing_token', 1]], 'by reason, escaped')
})

t.test('every event is counted under its name and labels', async (t) => {
  const registry = new Registry()
  const h = await build(t, { metrics: { registry } })
  const events = h.app.sessions.events
  const subject = { userId: 'alice', id: 'sid' }
  events.publish(undefined, 'session.created', 0, subject, { remembered: false })
  events.publish(undefined, 'session.refreshed', 0, subject, { rotations: 1 })
  events.publish(undefined, 'session.revoked', 0, subject, { reason: 'reuse' })
  events.publish(undefined, 'session.evicted', 0, subject, {})
  events.publish(undefined, 'session.expired', 0, subject, { reason: 'idle' })
  events.publish(undefined, 'session.expired', 0, subject, { reason: 'idle' })
  events.publish(undefined, 'auth.rejected', 0, subject, { reason: 'unknown_session' })
  events.publish(undefined, 'refresh.reuse_detected', 0, subject, {})
  events.publish(undefined, 'login.failed', 0, undefined, { usernameHash: 'h', failures: 1 })
  events.publish(undefined, 'login.locked', 0, undefined, { usernameHash: 'h', scope: 'ip', retryAfterMs: 1000 })
  events.publish(undefined, 'anomaly.detected', 0, subject, { rule: 'impossible_travel', decision: 'revoke', at: 'request', detail: {} })
  const { samples } = parseExposition(await registry.metrics())
  const counters = samples.filter((sample) => sample.name.endsWith('_total')).map((sample) => [sample.name, sample.labels, sample.value])
  t.same(counters.sort(), [
    ['session_guard_anomalies_total', { rule: 'impossible_travel', decision: 'revoke' }, 1],
    ['session_guard_auth_rejected_total', {}, 1],
    ['session_guard_login_failures_total', {}, 1],
    ['session_guard_login_lockouts_total', { scope: 'ip' }, 1],
    ['session_guard_refresh_reuse_detected_total', {}, 1],
    ['session_guard_sessions_created_total', {}, 1],
    ['session_guard_sessions_evicted_total', {}, 1],
    ['session_guard_sessions_expired_total', { reason: 'idle' }, 2],
    ['session_guard_sessions_refreshed_total', {}, 1],
    ['session_guard_sessions_revoked_total', { reason: 'reuse' }, 1]
  ])
})

t.test('a private registry, served at a path of its own beside fastify-metrics at /metrics', async (t) => {
  const appRegistry = new Registry()
  const h = await build(t, { metrics: { path: '/session-metrics' } }, (app) => {
    // What fastify-metrics registers: its own route at /metrics.
    app.get('/metrics', async (_request, reply) => await reply.type(appRegistry.contentType).send(await appRegistry.metrics()))
  })
  await h.login('alice')
  const response = await h.app.inject({ method: 'GET', url: '/session-metrics' })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const { samples } = parseExposition(response.body)
  t.equal(find(samples, 'session_guard_sessions_created_total')[0]?.value, 1)
  t.notOk(samples.some((sample) => sample.name.startsWith('process_')), 'only the plugin is in its registry')
  t.notMatch((await h.app.inject({ method: 'GET', url: '/metrics' })).body, 'session_guard_', "and none of it leaks into the app's")
})

t.test("the app's registry served at the plugin's path too, and two instances in one registry need two prefixes", async (t) => {
  const registry = new Registry()
  const h = await build(t, { metrics: { registry, path: '/internal/metrics' } })
  await h.login('alice')
  const body = (await h.app.inject({ method: 'GET', url: '/internal/metrics' })).body
  t.equal(find(parseExposition(body).samples, 'session_guard_sessions_created_total')[0]?.value, 1)

  const clash = Fastify()
  t.teardown(() => clash.close())
  clash.register(sessionGuard, { secret: SECRET, metrics: { registry } })
  await t.rejects(async () => { await clash.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /metrics\.registry.*already holds session_guard_store_up.*metrics\.prefix/ })
  t.ok(registry.getSingleMetric('session_guard_store_up'), "the refused instance leaves the first one's metrics alone")
  t.equal(registry.getSingleMetric('other_store_up'), undefined)

  const second = await build(t, { metrics: { registry, prefix: 'admin_sessions_' } })
  await second.login('bob')
  const { samples } = parseExposition(await registry.metrics())
  t.equal(find(samples, 'admin_sessions_sessions_created_total')[0]?.value, 1)
  t.equal(find(samples, 'session_guard_sessions_created_total')[0]?.value, 1)
})

t.test('figures the store cannot tell are left out, not shown as 0; one store call per scrape', async (t) => {
  const registry = new Registry()
  const store = memoryStore()
  const stats = store.stats.bind(store)
  let calls = 0
  store.stats = async () => { calls++; return { ...await stats(), capacity: undefined, estimatedBytes: undefined, counterEvictions: undefined } }
  const h = await build(t, { store, metrics: { registry } })
  await h.login('alice')
  calls = 0
  let { samples } = parseExposition(await registry.metrics())
  t.equal(calls, 1, 'the store gauges share one call')
  t.equal(find(samples, 'session_guard_store_up')[0]?.value, 1)
  t.equal(find(samples, 'session_guard_active_sessions')[0]?.value, 1)
  t.same(find(samples, 'session_guard_users_by_session_count'), [{ name: 'session_guard_users_by_session_count', labels: { sessions: '1' }, value: 1 }])
  t.same(find(samples, 'session_guard_store_capacity'), [], 'no capacity: no sample')
  t.same(find(samples, 'session_guard_store_estimated_bytes'), [])
  t.same(find(samples, 'session_guard_store_counter_evictions'), [], 'a store whose counters only expire: no sample')

  store.stats = async () => { throw new Error('down') }
  ;({ samples } = parseExposition(await registry.metrics()))
  t.equal(find(samples, 'session_guard_store_up')[0]?.value, 0, 'a store down is up 0')
  for (const name of ['session_guard_active_sessions', 'session_guard_users', 'session_guard_users_by_session_count']) {
    t.same(find(samples, name), [], `and no ${name}`)
  }
  t.equal(find(samples, 'session_guard_sessions_created_total')[0]?.value, 1, 'the counters stay')
})

t.test('the metrics option is checked, and prom-client is asked for only with it', async (t) => {
  for (const [option, metrics] of [
    ['metrics', {}],
    ['metrics.path', { path: 'metrics' }],
    ['metrics.registry', { registry: {} }],
    ['metrics.registry', { registry: 'global' }],
    ['metrics.registry', { registry: null }],
    ['metrics.rejectionReasons', { path: '/metrics', rejectionReasons: 'yes' }],
    ['metrics.prefix', { path: '/metrics', prefix: 'session-guard' }],
    ['metrics.prefix', { path: '/metrics', prefix: 1 }],
    ['metrics.regsitry', { path: '/metrics', regsitry: new Registry() }]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(sessionGuard, { secret: SECRET, metrics: metrics as never })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: `Invalid option "${option}"` }, option)
  }
  t.throws(() => loadPromClient(() => { throw new Error("Cannot find module 'prom-client'") }), {
    code: 'FST_SESSION_GUARD_INVALID_OPTION',
    message: /metrics.*npm install prom-client/
  }, 'without prom-client installed, the metrics option says what to install')
  t.equal(loadPromClient().Registry, Registry, 'the prom-client the app installed')
})
