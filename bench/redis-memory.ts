import Fastify from 'fastify'
import sessionGuard from 'fastify-session-guard'
import { redisStore } from 'fastify-session-guard/redis'
import { Redis } from 'ioredis'
import { integer, machine, parseFlags, requireBuild, table, today, versions, writeReportSection } from './common.js'
import { addFillRoute, fill, SCENARIOS, SECRET, SESSIONS_PER_USER, sizesOf, type Scenario } from './logins.js'
import { CLIENT, ask, info, withRedisServers } from './redis-server.js'
import { userIds } from './sessions.js'

const USAGE = `npm run bench:redis-memory -- [options]

Bytes of Redis memory per session, for sessions created through
reply.issueSession() into the Redis store (3 per user), each size on its own
empty redis-server that this benchmark starts (a free port of 127.0.0.1,
stopped by pid): used_memory per session, keys per session, and what each
kind of key holds.

  --sizes <a,b>   session counts to measure                 (default 100000,1000000)
  --smoke         one tiny size, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { sizes: '100000,1000000', write: false }, { sizes: '3000' }, USAGE)

const TARGET = 400
const FILL_CONCURRENCY = 32
const PREFIX = 'sg:'

/** The kinds of key the store writes (see lib/stores/redis/keys.ts), by the shape of the key. */
const KINDS: ReadonlyArray<readonly [string, RegExp]> = [
  ['sessions', /^sg:\{u:.*\}:[rs]:/],
  ['user indexes', /^sg:\{u:.*\}:i$/],
  ['index versions', /^sg:\{u:.*\}:v$/],
  ['login histories', /^sg:\{u:.*\}:h$/],
  ['id lookups', /^sg:id:\{/],
  ['stats', /^sg:\{stats:/],
  ['counters', /^sg:c:/]
]

interface Kind { keys: number, bytes: number, encodings: Map<string, number> }

interface Measurement {
  redisVersion: string
  usedMemory: number
  keys: number
  kinds: Map<string, Kind>
}

/** Each key's kind, `MEMORY USAGE` (every element counted) and encoding, summed by kind. */
async function weigh (client: Redis): Promise<Map<string, Kind>> {
  const kinds = new Map<string, Kind>([...KINDS.map(([name]) => name), 'other'].map((name) => [name, { keys: 0, bytes: 0, encodings: new Map() }]))
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000)
    cursor = next
    const pipeline = client.pipeline()
    for (const key of keys) {
      pipeline.memory('USAGE', key, 'SAMPLES', 0)
      pipeline.object('ENCODING', key)
    }
    const replies = await pipeline.exec() ?? []
    keys.forEach((key, i) => {
      const name = KINDS.find(([, pattern]) => pattern.test(key))?.[0] ?? 'other'
      const kind = kinds.get(name) as Kind
      kind.keys++
      kind.bytes += Number(replies[2 * i]?.[1])
      const encoding = String(replies[2 * i + 1]?.[1])
      kind.encodings.set(encoding, (kind.encodings.get(encoding) ?? 0) + 1)
    })
  } while (cursor !== '0')
  return kinds
}

async function usedMemory (port: number): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await info(port, 'memory'))?.[1])
}

async function measure (scenario: Scenario, size: number): Promise<Measurement> {
  return await withRedisServers(1, [], async ({ ports: [port] }) => {
    const users = userIds(Math.ceil(size / SESSIONS_PER_USER))
    const client = new Redis(port as number, '127.0.0.1', CLIENT)
    const app = Fastify()
    // No local cache: it holds sessions in the app's heap, not in Redis.
    await app.register(sessionGuard, { secret: SECRET, store: redisStore({ client, closeClient: true, prefix: PREFIX, localCache: false }) })
    // Each login's round trips one after another would take half an hour for a million; 32 at a time.
    addFillRoute(app, size, users, scenario, FILL_CONCURRENCY)
    await app.ready()
    const empty = await usedMemory(port as number)
    await fill(app, size)
    const filled = await usedMemory(port as number)
    await app.close()
    const measured = await ask(port as number, async (admin) => ({ keys: await admin.dbsize(), kinds: await weigh(admin) }))
    const redisVersion = /redis_version:(\S+)/.exec(await info(port as number, 'server'))?.[1] ?? 'unknown'
    return { redisVersion, usedMemory: filled - empty, ...measured }
  })
}

function encodings (kind: Kind): string {
  return [...kind.encodings].map(([encoding, count]) => count === kind.keys ? encoding : `${encoding} ${integer(count)}`).join(', ')
}

async function main (): Promise<void> {
  requireBuild()
  const totals: string[][] = []
  const breakdown: string[][] = []
  let version = ''
  for (const scenario of SCENARIOS) {
    for (const size of sizesOf(flags.sizes)) {
      const m = await measure(scenario, size)
      version = m.redisVersion
      const perSession = m.usedMemory / size
      console.log(`  ${scenario.name} ${integer(size)}: ${integer(perSession)} B/session`)
      const history = (m.kinds.get('login histories') as Kind).bytes / size
      totals.push([
        scenario.label,
        integer(size),
        integer(perSession),
        integer(perSession - history),
        (m.keys / size).toFixed(2),
        scenario.name === 'device' && size >= 1_000_000
          ? `≤ ${TARGET} B: ${perSession <= TARGET ? 'met' : `missed by ${integer(perSession - TARGET)} B`}`
          : `(≤ ${TARGET} B at 1M with device metadata)`
      ])
      for (const [name, kind] of m.kinds) {
        if (kind.keys === 0) continue
        breakdown.push([scenario.name, integer(size), name, integer(kind.keys), integer(kind.bytes / size), integer(kind.bytes / kind.keys), encodings(kind)])
      }
    }
  }
  const markdown = [
    '## Redis memory per session',
    '',
    table(['sessions hold', 'sessions', 'used_memory B/session', 'without the login history', 'keys/session', 'target'], totals),
    '',
    '"Without the login history" takes the history lists\' `MEMORY USAGE` away: the history is a feature of its own',
    '(`history`, on by default, `false` turns it off), kept by its own retention rule rather than the sessions\'.',
    '',
    'Where it goes: each kind of key, its count, `MEMORY USAGE` (every element counted) per session and per key, and',
    'how Redis encodes it (a session is one string, `raw` once longer than 44 bytes; a hash or a sorted set is',
    'compact as a `listpack` while every value is at most 64 bytes, `hash-max-listpack-value`).',
    '',
    table(['scenario', 'sessions', 'keys of', 'keys', 'B/session', 'B/key', 'encoding'], breakdown),
    '',
    `Run on ${today()}: ${machine()}, Redis ${version}.`,
    `Packages: ${Object.entries(versions(['fastify', 'ioredis'])).map(([name, v]) => `${name} ${v}`).join(', ')}.`,
    '',
    `Sessions are created through \`reply.issueSession()\` (${SESSIONS_PER_USER} per user, claims \`{ role }\`, ${FILL_CONCURRENCY} logins at a time) into the Redis`,
    'store without its local cache, each size on an empty private redis-server (no persistence, default settings).',
    '`used_memory` is read once the plugin is ready and again once every session is in: the difference, per session,',
    'counts everything the sessions left (the sessions, the indexes, the lookup keys, the stats bookkeeping, the',
    'history, the counters) and Redis\'s own overhead for those keys. With device metadata, each login sends one',
    'of the fixture\'s user agents (`bench/fixtures/user-agents.json`, the most common most often).',
    '',
    'Reproduce: `npm run bench:redis-memory` (`-- --sizes 100000,1000000`). It builds `dist/` first.'
  ].join('\n')
  console.log(`\n${markdown}`)
  if (!flags.smoke || flags.write) console.log(`\nwrote ${writeReportSection('redis-memory', markdown)}`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
