import Fastify from 'fastify'
import sessionGuard, { memoryStore } from 'fastify-session-guard'
import { integer, machine, parseFlags, requireBuild, table, today, versions, writeReportSection } from './common.js'
import { addFillRoute, fill, SCENARIOS, SECRET, SESSIONS_PER_USER, sizesOf, type Scenario } from './logins.js'
import { userIds } from './sessions.js'

const USAGE = `npm run bench:memory -- [options]    (node needs --expose-gc; the npm script passes it)

Heap bytes per session held by the memory store, for sessions created
through reply.issueSession(), 3 per user.

  --sizes <a,b>   session counts to measure                 (default 100000,1000000)
  --smoke         one tiny size, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { sizes: '100000,1000000', write: false }, { sizes: '3000' }, USAGE)

function gc (): void {
  const collect = global.gc
  if (collect === undefined) throw new Error('run with node --expose-gc (npm run bench:memory does)')
  // Twice: the first pass can leave objects that only become garbage after finalisation.
  collect()
  collect()
}

interface Heap { heapUsed: number, arrayBuffers: number }

function heap (): Heap {
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return { heapUsed, arrayBuffers }
}

interface Measurement {
  sessions: number
  /** Heap per slot the store reserves up front for its capacity (lru-cache's key and value lists). */
  capacityBytes: number
  /** Heap each session adds when it is created. */
  sessionBytes: number
  /** Outside the JS heap: the session table's columns and lru-cache's typed arrays, per session. */
  arrayBufferBytes: number
}

async function measure (scenario: Scenario, size: number): Promise<Measurement> {
  const users = userIds(Math.ceil(size / SESSIONS_PER_USER))
  const before = heap()
  // Sized for exactly these sessions: the least the store can reserve.
  const store = memoryStore({ max: size })
  const withStore = heap()
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store })
  addFillRoute(app, size, users, scenario)
  await app.ready()
  const empty = heap()
  await fill(app, size)
  // `users` stays alive until measured: every baseline above holds it too.
  const filled = heap()
  users.length = 0
  await app.close()
  return {
    sessions: size,
    capacityBytes: (withStore.heapUsed - before.heapUsed) / size,
    sessionBytes: (filled.heapUsed - empty.heapUsed) / size,
    arrayBufferBytes: (filled.arrayBuffers - before.arrayBuffers) / size
  }
}

async function main (): Promise<void> {
  requireBuild()
  const sizes = sizesOf(flags.sizes)
  const rows: string[][] = []
  for (const scenario of SCENARIOS) {
    for (const size of sizes) {
      const m = await measure(scenario, size)
      // Bytes moved out of the heap into typed arrays are still bytes: the target holds against all of them.
      const total = m.capacityBytes + m.sessionBytes + m.arrayBufferBytes
      console.log(`  ${scenario.name} ${integer(size)}: ${integer(total)} B/session`)
      rows.push([
        scenario.label,
        integer(size),
        integer(m.sessionBytes),
        integer(m.capacityBytes),
        integer(m.arrayBufferBytes),
        integer(total),
        scenario.name === 'device' && size >= 1_000_000
          ? `≤ 300 B: ${total <= 300 ? 'met' : `missed by ${integer(total - 300)} B`}`
          : '(≤ 300 B at 1M with device metadata)'
      ])
    }
  }
  const markdown = [
    '## Memory per session',
    '',
    table(['sessions hold', 'sessions', 'heap B/session', 'store capacity B/slot', 'ArrayBuffer B/session', 'total B/session', 'target'], rows),
    '',
    `Run on ${today()}: ${machine()}.`,
    `Packages: ${Object.entries(versions(['fastify', '@fastify/jwt', 'lru-cache'])).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    `Sessions are created through \`reply.issueSession()\` (${SESSIONS_PER_USER} per user, a fresh UUID user id string per login,` +
    ' claims `{ role }`) into a memory store sized for exactly that many. `heapUsed` is read after two forced collections' +
    ' (`--expose-gc`): "heap B/session" is what filling added, "store capacity" what lru-cache reserves per slot up front' +
    ' (its key and value lists), "ArrayBuffer" what typed arrays and buffers outside the heap grew by (the session table\'s' +
    ' columns, lru-cache\'s links). Their sum, "total", is the figure held against the target. It counts the whole store:' +
    ' besides the sessions, its login history and counters (known devices, login bursts), each bounded by its own option' +
    ' (`maxHistoryEntries`, `maxCounters`: 100,000 each by default) whatever the number of sessions, so they weigh more per' +
    ' session in a smaller store. The app itself is not counted.',
    '',
    'Reproduce: `npm run bench:memory` (`-- --sizes 100000,1000000`). It builds `dist/` first.'
  ].join('\n')
  console.log(`\n${markdown}`)
  if (!flags.smoke || flags.write) console.log(`\nwrote ${writeReportSection('memory', markdown)}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
