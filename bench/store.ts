import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import sessionGuard, { memoryStore, type MemoryStore, type SessionRecord } from 'fastify-session-guard'
import {
  fixed, integer, machine, parseFlags, ratio, requireBuild, table, timeAsync, today, versions, writeReportSection, type Timing
} from './common.js'
import { DEFAULT_LIMIT, MINUTE, randomIndices, sessionRecord, userIds } from './sessions.js'

const USAGE = `npm run bench:store -- [options]

Memory-store operations at a large store size, and logins per second
(reply.issueSession, including the HS256 signature), in this process.

  --size <n>      sessions in the large store               (default 1000000)
  --small <n>     sessions in the small store (listing)     (default 10000)
  --time <ms>     measured time per operation               (default 2000)
  --warmup <ms>   warm-up time per operation                (default 500)
  --smoke         tiny sizes and times, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), {
  size: 1_000_000,
  small: 10_000,
  time: 2000,
  warmup: 500,
  write: false
}, { size: 3000, small: 300, time: 100, warmup: 50 }, USAGE)

const SESSIONS_PER_USER = 3
const SECRET = 'a-benchmark-secret-that-is-long-enough-0123456789'

interface Row { operation: string, size: number, timing: Timing, target?: Target }

/** A target of the issue: its text and whether a timing meets it. */
interface Target { text: string, met: (timing: Timing) => boolean }
const atMostMicros = (micros: number): Target => ({ text: `≤ ${micros} µs`, met: (t) => t.nsPerOp <= micros * 1000 })
const atLeastPerSec = (ops: number): Target => ({ text: `≥ ${integer(ops)}/s`, met: (t) => t.opsPerSec >= ops })

/** A store of `size` sessions, `SESSIONS_PER_USER` per user, all created through the store's own `create`. */
async function filledStore (size: number, now: number): Promise<Filled> {
  // Room for the sessions created while measuring (logins included), so capacity eviction never runs.
  const store = memoryStore({ max: Math.max(size * 2, 100_000) })
  store.open({ now: () => now, onRemoved: () => {} })
  const users = userIds(Math.ceil(size / SESSIONS_PER_USER))
  const ids: string[] = []
  for (let i = 0; i < size; i++) {
    // Spread the logins over an hour, so "most recently active" has an order to sort by.
    const session = sessionRecord(users[Math.floor(i / SESSIONS_PER_USER)] as string, now - MINUTE + i % 60_000, i)
    await store.create(session, DEFAULT_LIMIT, now)
    ids.push(session.id)
  }
  return { store, users, ids }
}

interface Filled { store: MemoryStore, users: string[], ids: string[] }

async function storeRows ({ store, users, ids }: Filled, now: number, full: boolean): Promise<Row[]> {
  const size = ids.length
  const timing = { timeMs: flags.time, warmupMs: flags.warmup }
  const pick = randomIndices(1 << 16, ids.length)
  const pickUser = randomIndices(1 << 16, users.length)
  const idAt = (i: number): string => ids[pick[i & 0xffff] as number] as string
  const userAt = (i: number): string => users[pickUser[i & 0xffff] as number] as string
  const rows: Row[] = []

  rows.push({ operation: 'get (random live id)', size, timing: await timeAsync(async (i) => await store.get(idAt(i), now), timing), target: full ? atMostMicros(1.5) : undefined })
  if (full) {
    rows.push({
      operation: 'touch (record activity)',
      size,
      timing: await timeAsync(async (i) => await store.touch(idAt(i), { lastSeenAt: now, idleExpiresAt: now + 30 * MINUTE }, now), timing)
    })
    // New sessions for existing users (3 live, limit 15): count, sort, insert. At most a tenth of
    // the size, so the store stays near it; records are built before the clock starts.
    const count = Math.max(2000, Math.floor(size / 10))
    const fresh = Array.from({ length: count }, (_, i) => sessionRecord(userAt(i), now, i))
    const create = await timeAsync(async (i) => await store.create(fresh[i] as SessionRecord, DEFAULT_LIMIT, now), { ...timing, maxOps: count })
    rows.push({ operation: 'create-with-limit (under the limit of 15)', size, timing: create, target: atMostMicros(5) })
    // Revoke exactly those, so the store is back to its size.
    const revoke = await timeAsync(async (i) => await store.revoke((fresh[i] as SessionRecord).id, now), { ...timing, maxOps: count })
    rows.push({ operation: 'revoke', size, timing: revoke })
    // Limit 3 for users holding 3: every create evicts their least recently active session; the size stays put.
    const atLimit = { max: SESSIONS_PER_USER, onLimit: 'evict-oldest' } as const
    const more = Array.from({ length: count }, (_, i) => sessionRecord(userAt(i + count), now, i))
    rows.push({
      operation: 'create-with-limit (at the limit of 3, evicts one)',
      size,
      timing: await timeAsync(async (i) => await store.create(more[i] as SessionRecord, atLimit, now), { ...timing, maxOps: count }),
      target: atMostMicros(5)
    })
  }
  rows.push({ operation: `list a user's sessions (${SESSIONS_PER_USER})`, size, timing: await timeAsync(async (i) => await store.listUser(userAt(i), now), timing) })
  return rows
}

/**
 * Logins per second. `reply.issueSession()` is called in a loop from inside
 * one route handler, on a real reply, so everything it does is measured
 * (validation, ids and fingerprint from the random pool, refresh-token MAC
 * and hashes, store.create with the limit, events, setting two cookies, the
 * HS256 signature), but not routing, cookie serialisation (done once, in
 * onSend) or writing a response. The whole request through app.inject is
 * measured too, for context; inject adds its own cost.
 */
async function loginRows ({ store, users, ids }: Filled, now: number): Promise<Row[]> {
  const size = ids.length
  const app = Fastify()
  await app.register(sessionGuard, { secret: SECRET, store, clock: () => now })
  const pickUser = randomIndices(1 << 16, users.length)
  const userAt = (i: number): string => users[pickUser[i & 0xffff] as number] as string
  const input = (i: number): { userId: string, claims: Record<string, unknown> } => ({ userId: userAt(i), claims: { role: 'member' } })
  let direct: Timing | undefined
  app.post('/bench', async (_request, reply: FastifyReply) => {
    direct = await timeAsync(async (i) => {
      await reply.issueSession(input(i))
      // Each login's cookies belong to its own reply: this one would pile them all up.
      reply.removeHeader('set-cookie')
    }, { timeMs: flags.time, warmupMs: flags.warmup, batch: 100 })
    return { ok: true }
  })
  let n = 0
  app.post('/login', async (_request, reply) => {
    const { accessToken } = await reply.issueSession(input(n++))
    return { accessToken }
  })
  // The guard rows' sessions, one user each: no later login can push them out under the per-user limit.
  let g = 0
  app.post('/login-alone', async (_request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: `guard-bench-${g++}`, claims: { role: 'member' } })
    return { accessToken }
  })
  await app.ready()
  const response = await app.inject({ method: 'POST', url: '/bench' })
  if (response.statusCode !== 200 || direct === undefined) throw new Error(`login benchmark failed: ${response.body}`)
  const injected = await timeAsync(async () => {
    const login = await app.inject({ method: 'POST', url: '/login' })
    if (login.statusCode !== 200) throw new Error(`login failed: ${login.body}`)
  }, { timeMs: flags.time, warmupMs: flags.warmup, batch: 50 })
  const guard = await guardRows(app)
  await app.close()
  return [
    { operation: 'login: reply.issueSession() incl. HS256 signature', size, timing: direct, target: atLeastPerSec(15_000) },
    { operation: 'login: whole request through app.inject (context)', size, timing: injected },
    ...guard.map((row) => ({ ...row, size }))
  ]
}

/** Tokens the guard rows rotate through when they must miss the verified-token cache (it holds 10,000). */
const MISS_TOKENS = 12_000

/**
 * The guard's own cost per request, in-process: `app.requireSession` called
 * on a request object that carries what the HTTP layer would have parsed
 * (headers, cookies). Token verification, fingerprint check, store read.
 * Once with one token (what a client does until its token expires: the
 * verified-token cache hits), once rotating through more tokens than that
 * cache holds (every request verifies the signature).
 */
async function guardRows (app: FastifyInstance): Promise<Array<Omit<Row, 'size'>>> {
  const tokens = flags.smoke ? 50 : MISS_TOKENS
  const requests: FastifyRequest[] = []
  for (let i = 0; i < tokens; i++) {
    const login = await app.inject({ method: 'POST', url: '/login-alone' })
    const { accessToken } = login.json<{ accessToken: string }>()
    const fingerprint = login.cookies.find((c) => c.name === '__Host-sg-fp')?.value as string
    requests.push({
      headers: { authorization: `Bearer ${accessToken}`, cookie: `__Host-sg-fp=${fingerprint}` },
      cookies: { '__Host-sg-fp': fingerprint },
      log: app.log,
      user: null,
      authSession: null
    } as unknown as FastifyRequest)
  }
  // Only written on a refusal, which would fail the run.
  const reply = { header () { throw new Error('the guard refused a benchmark request') } } as unknown as FastifyReply
  const timing = { timeMs: flags.time, warmupMs: flags.warmup }
  const one = requests[0] as FastifyRequest
  return [
    { operation: 'guard: requireSession, one token (per request)', timing: await timeAsync(async () => await app.requireSession(one, reply), timing) },
    {
      operation: `guard: requireSession, ${integer(tokens)} tokens in turn`,
      timing: await timeAsync(async (i) => await app.requireSession(requests[i % tokens] as FastifyRequest, reply), timing)
    }
  ]
}

async function main (): Promise<void> {
  requireBuild()
  const now = Date.now()
  console.log(`memory store: ${integer(flags.small)} and ${integer(flags.size)} sessions, ${SESSIONS_PER_USER} per user; ${flags.warmup} ms warm-up + ${flags.time} ms per operation`)
  const smallStore = await filledStore(flags.small, now)
  const small = await storeRows(smallStore, now, false)
  await smallStore.store.close()
  const filled = await filledStore(flags.size, now)
  const large = await storeRows(filled, now, true)
  // The plugin takes over the large store (and closes it with the app).
  const logins = await loginRows(filled, now)

  const growth = (prefix: string): number =>
    (large.find((row) => row.operation.startsWith(prefix))?.timing.nsPerOp ?? NaN) /
    (small.find((row) => row.operation.startsWith(prefix))?.timing.nsPerOp ?? NaN)
  const rows = [...small, ...large, ...logins].map((row) => [
    row.operation,
    integer(row.size),
    fixed(row.timing.nsPerOp / 1000, 2),
    integer(row.timing.opsPerSec),
    row.target === undefined ? '' : `${row.target.text}: ${row.target.met(row.timing) ? 'met' : 'missed'}`
  ])
  const markdown = [
    '## Store operations and logins',
    '',
    table(['operation', 'sessions in store', 'µs/op', 'ops/s', 'target'], rows),
    '',
    `Listing a user's sessions at ${integer(flags.size)} vs ${integer(flags.small)} sessions: ${ratio(growth('list'))} the time,` +
    ` for a store ${ratio(flags.size / flags.small)} the size; a get by id grows ${ratio(growth('get'))} over the same step.` +
    ' Listing reads the per-user index and then gets each of that user\'s sessions: it grows like a get does (random reads' +
    ' in a heap that no longer fits the CPU caches), not with the number of sessions as a scan would.',
    '',
    `Run on ${today()}: ${machine()}.`,
    `Packages: ${Object.entries(versions(['fastify', '@fastify/jwt', 'fast-jwt', 'lru-cache'])).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    `One process, the built \`dist/\`. Stores are filled through \`create()\` with ${SESSIONS_PER_USER} sessions per user` +
    ' (UUID user ids, random 128-bit session ids, fresh hash strings, a small claim set). Each operation is awaited, as the' +
    ` plugin awaits its store, in batches timed with \`process.hrtime.bigint()\` after ${flags.warmup} ms of warm-up; µs/op` +
    ` is the median batch over ${flags.time} ms (simple timing loops: no benchmarking library is a dependency). Ids and users` +
    ' are drawn at random, so reads are not cache-friendly. Records for create are built before timing starts.' +
    ' The login row calls `reply.issueSession()` in a loop inside one route handler on a real reply: routing, cookie' +
    ' serialisation (at onSend) and writing the response are not in it; the app.inject row has all of that plus inject\'s own cost.',
    '',
    'Reproduce: `npm run bench:store` (`-- --size 1000000`). It builds `dist/` first.'
  ].join('\n')
  console.log(`\n${markdown}`)
  if (!flags.smoke || flags.write) console.log(`\nwrote ${writeReportSection('store', markdown)}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
