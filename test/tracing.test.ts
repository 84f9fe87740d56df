import { SpanStatusCode, trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { memoryStore } from '../lib/index.js'
import { GUARD_SPAN, instrumentGuard, loadTracer, OUTCOME_ATTRIBUTE } from '../lib/monitoring/tracing.js'
import { build } from './helper.js'

const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
t.teardown(() => trace.disable())

t.test('each guarded request runs in a span with its outcome, and nothing of the user', async (t) => {
  exporter.reset()
  const store = memoryStore()
  const h = await build(t, { store })
  const alice = await h.login('alice')
  t.same(exporter.getFinishedSpans(), [], 'a login is not guarded')

  t.equal((await h.me(alice)).statusCode, 200)
  t.equal((await h.app.inject({ method: 'GET', url: '/me' })).statusCode, 401)
  store.get = async () => { throw new Error('connection lost') }
  t.equal((await h.me(alice)).statusCode, 503)

  const spans = exporter.getFinishedSpans()
  t.same(spans.map((span) => span.name), [GUARD_SPAN, GUARD_SPAN, GUARD_SPAN])
  t.same(spans.map((span) => span.attributes), [
    { [OUTCOME_ATTRIBUTE]: 'accepted' },
    { [OUTCOME_ATTRIBUTE]: 'rejected' },
    { [OUTCOME_ATTRIBUTE]: 'error' }
  ], 'the outcome, and no user id, session id or reason')
  t.same(spans.map((span) => span.status.code), [SpanStatusCode.UNSET, SpanStatusCode.UNSET, SpanStatusCode.ERROR], 'only a failure is an error: a refusal is the guard doing its job')
  t.equal(spans[2]?.events[0]?.name, 'exception')
  t.equal(spans[0]?.instrumentationScope.name, 'fastify-session-guard')
})

t.test('without @opentelemetry/api (and without metrics) the guard runs bare', async (t) => {
  t.equal(loadTracer(() => { throw new Error("Cannot find module '@opentelemetry/api'") }), undefined)
  const guard = async (_request: FastifyRequest, _reply: FastifyReply): Promise<void> => {}
  t.equal(instrumentGuard(guard, { time: undefined, tracer: undefined }), guard, 'no wrapper at all')
  t.not(instrumentGuard(guard, { time: undefined, tracer: loadTracer() }), guard, 'with the API installed, a span')
  const outcomes: string[] = []
  const timed = instrumentGuard(guard, { time: () => (outcome) => outcomes.push(outcome), tracer: undefined })
  await timed({} as FastifyRequest, {} as FastifyReply)
  t.same(outcomes, ['accepted'], 'metrics without tracing: timed only')
})
