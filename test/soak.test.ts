import t from 'tap'
import { runSoak, slope } from '../bench/soak.js'
import { memoryStore } from '../lib/index.js'

/** The store under load; the Redis store plugs in here. */
const store = () => memoryStore({ max: 100_000, purgeIntervalMs: 1000 })

// The short mode of bench/soak.ts (`npm run soak` runs it for minutes). It
// asserts what cannot flake: no errors, no 5xx, the index and the store
// agreeing, nothing left open; memory only against a very generous bound.
t.test('short soak: a real server under mixed load', async (t) => {
  const report = await runSoak({ durationSeconds: 5, connections: 16, users: 200, maxSessionsPerUser: 5, warmupSeconds: 1, store })
  t.ok(report.requests > 0, `${report.requests} requests`)
  t.equal(report.errors, 0, 'no socket errors or timeouts')
  t.equal(report.serverErrors, 0, 'no 5xx')
  t.notOk(Object.keys(report.statusCounts).some((code) => Number(code) >= 500), 'no 5xx status at all')
  for (const route of ['POST /login 200', 'GET /me 200', 'POST /refresh 200', 'POST /logout 204', 'POST /logout-others 200', 'GET /me 401']) {
    t.ok((report.routeCounts[route] ?? 0) > 0, `the mix included ${route}`)
  }
  t.ok(report.consistency.agreed, `the per-user index and the store agree ${JSON.stringify(report.consistency)}`)
  t.equal(report.consistency.overLimit, 0, 'no user above the limit')
  t.same(report.leftOpen, [], 'nothing left open after close')
  t.ok(report.memory.heapUsedEnd - report.memory.heapUsedStart < 256 * 1024 * 1024, 'the heap did not grow by 256 MB in 5 s')
})

t.test('slope is a least-squares fit', async (t) => {
  t.equal(slope([]), 0)
  t.equal(slope([[1, 5]]), 0)
  t.equal(slope([[1, 5], [1, 7]]), 0, 'no spread in x')
  t.equal(slope([[0, 1], [1, 3], [2, 5]]), 2)
})
