import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify, { type FastifyReply } from 'fastify'
import sessionGuard, { memoryStore, type SessionGuardOptions } from 'fastify-session-guard'
import { integer, machine, parseFlags, requireBuild, ROOT, table, today, versions, writeReportSection } from './common.js'
import { userIds } from './sessions.js'

const USAGE = `npm run bench:memory -- [options]    (node needs --expose-gc; the npm script passes it)

Heap bytes per session held by the memory store, for sessions created
through reply.issueSession(), 3 per user.

  --sizes <a,b>   session counts to measure                 (default 100000,1000000)
  --smoke         one tiny size, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { sizes: '100000,1000000', write: false }, { sizes: '3000' }, USAGE)

const SESSIONS_PER_USER = 3
const SECRET = 'a-benchmark-secret-that-is-long-enough-0123456789'
const UA_FIXTURE = join(ROOT, 'bench', 'fixtures', 'user-agents.json')

/**
 * What each session carries. Adding the device part is one entry: its
 * plugin options, and the user agent each login comes from.
 */
interface Scenario {
  readonly name: string
  readonly label: string
  /** Why it cannot run yet, or `undefined`. */
  readonly missing?: () => string | undefined
  readonly options: () => Partial<SessionGuardOptions>
  /** The `User-Agent` of login `n`, when the scenario sends one. */
  readonly userAgent?: () => (n: number) => string
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'claims',
    label: 'session with app claims, no device metadata',
    options: () => ({})
  },
  {
    // The device issue adds lib/device.ts and the fixture; put its plugin options here.
    name: 'device',
    label: 'session with app claims and full device metadata',
    missing: () => {
      if (!existsSync(join(ROOT, 'dist', 'device.js'))) return 'device metadata (lib/device.ts) is not merged yet'
      if (!existsSync(UA_FIXTURE)) return 'the user-agent fixture bench/fixtures/user-agents.json is not there yet'
      return undefined
    },
    options: () => ({}),
    userAgent: () => skewedUserAgents()
  }
]

/**
 * The fixture's user agents drawn with a Zipf-like skew (the k-th most common
 * one about 1/k as often), as real traffic is dominated by a few browsers.
 * The fixture is an array of strings, or of `{ ua, weight? }` objects whose
 * weights, when given, replace the skew.
 */
function skewedUserAgents (): (n: number) => string {
  const fixture = JSON.parse(readFileSync(UA_FIXTURE, 'utf8')) as Array<string | { ua: string, weight?: number }>
  const agents = fixture.map((entry) => typeof entry === 'string' ? entry : entry.ua)
  const weights = fixture.map((entry, k) => typeof entry === 'object' && entry.weight !== undefined ? entry.weight : 1 / (k + 1))
  const total = weights.reduce((a, b) => a + b, 0)
  // A table of 4096 slots filled in proportion to the weights, walked with a stride prime to its size.
  const slots: string[] = []
  weights.forEach((weight, k) => {
    for (let s = Math.max(1, Math.round(weight / total * 4096)); s > 0; s--) slots.push(agents[k] as string)
  })
  return (n) => {
    // A fresh copy each time: a real request's header string is never shared with another request's.
    const ua = slots[(n * 2654435761) % slots.length] as string
    return Buffer.from(ua, 'latin1').toString('latin1')
  }
}

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
  /** Outside the JS heap: lru-cache's typed arrays, per session. */
  arrayBufferBytes: number
}

async function measure (scenario: Scenario, size: number): Promise<Measurement> {
  const users = userIds(Math.ceil(size / SESSIONS_PER_USER))
  const userAgent = scenario.userAgent?.()
  const before = heap()
  // Sized for exactly these sessions: the least the store can reserve.
  const store = memoryStore({ max: size })
  const withStore = heap()
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store, ...scenario.options() })
  app.post('/fill', async (request, reply: FastifyReply) => {
    for (let n = 0; n < size; n++) {
      // A fresh user id string per login, as each login's request or database row brings its own.
      const userId = Buffer.from(users[Math.floor(n / SESSIONS_PER_USER)] as string, 'latin1').toString('latin1')
      if (userAgent !== undefined) request.headers['user-agent'] = userAgent(n)
      await reply.issueSession({ userId, claims: { role: 'member' } })
    }
    return { ok: true }
  })
  await app.ready()
  const empty = heap()
  const response = await app.inject({ method: 'POST', url: '/fill' })
  if (response.statusCode !== 200) throw new Error(`filling failed: ${response.body}`)
  // `users` stays alive until measured: every baseline above holds it too.
  const filled = heap()
  users.length = 0
  const { sessions } = await app.sessions.stats()
  if (sessions !== size) throw new Error(`expected ${size} sessions in the store, found ${sessions}`)
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
  const sizes = flags.sizes.split(',').map((size) => Number(size.replace(/_/g, '')))
  if (sizes.some((size) => !Number.isSafeInteger(size) || size < SESSIONS_PER_USER)) throw new Error(`--sizes: counts of at least ${SESSIONS_PER_USER}, got ${flags.sizes}`)
  const rows: string[][] = []
  const skipped: string[] = []
  for (const scenario of SCENARIOS) {
    const reason = scenario.missing?.()
    if (reason !== undefined) {
      console.log(`skipping ${scenario.name}: ${reason}`)
      skipped.push(`- *${scenario.label}*: not measured (${reason}).`)
      continue
    }
    for (const size of sizes) {
      const m = await measure(scenario, size)
      console.log(`  ${scenario.name} ${integer(size)}: ${integer(m.capacityBytes + m.sessionBytes)} B/session`)
      rows.push([
        scenario.label,
        integer(size),
        integer(m.sessionBytes),
        integer(m.capacityBytes),
        integer(m.capacityBytes + m.sessionBytes),
        integer(m.arrayBufferBytes),
        scenario.name === 'device' && size >= 1_000_000
          ? `≤ 300 B: ${m.capacityBytes + m.sessionBytes <= 300 ? 'met' : `missed by ${integer(m.capacityBytes + m.sessionBytes - 300)} B`}`
          : '(≤ 300 B at 1M with device metadata)'
      ])
    }
  }
  const markdown = [
    '## Memory per session',
    '',
    table(['sessions hold', 'sessions', 'heap B/session', 'store capacity B/slot', 'heap total B/session', 'ArrayBuffer B/session', 'target'], rows),
    '',
    ...skipped,
    ...(skipped.length > 0 ? [''] : []),
    `Run on ${today()}: ${machine()}.`,
    `Packages: ${Object.entries(versions(['fastify', '@fastify/jwt', 'lru-cache'])).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    `Sessions are created through \`reply.issueSession()\` (${SESSIONS_PER_USER} per user, a fresh UUID user id string per login,` +
    ' claims `{ role }`) into a memory store sized for exactly that many. `heapUsed` is read after two forced collections' +
    ' (`--expose-gc`): "heap B/session" is what filling added, "store capacity" what lru-cache reserves per slot up front' +
    ' (its key and value lists), their sum the figure to hold against the target. lru-cache\'s typed arrays (links, TTLs)' +
    ' live outside the heap and are listed apart. The app itself is not counted.',
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
