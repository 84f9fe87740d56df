import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { ROOT } from './common.js'

/**
 * Sessions made the way an app makes them, for the memory benchmarks: logins
 * through `reply.issueSession()`, `SESSIONS_PER_USER` per user, with or
 * without the device metadata a browser's `User-Agent` brings.
 */

export const SESSIONS_PER_USER = 3
export const SECRET = 'a-benchmark-secret-that-is-long-enough-0123456789'
const UA_FIXTURE = join(ROOT, 'bench', 'fixtures', 'user-agents.json')

/** What each session carries: the user agent each login comes from, if any. */
export interface Scenario {
  readonly name: string
  readonly label: string
  /** The `User-Agent` of login `n`, when the scenario sends one. */
  readonly userAgent?: () => (n: number) => string
}

export const SCENARIOS: readonly Scenario[] = [
  { name: 'claims', label: 'session with app claims, no device metadata' },
  { name: 'device', label: 'session with app claims and full device metadata', userAgent: () => skewedUserAgents() }
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

/**
 * Adds `POST /fill` to `app` (registered with the plugin, not yet ready):
 * `size` logins, `SESSIONS_PER_USER` per user of `users`, from the
 * scenario's user agents, `concurrency` at a time (each on a request of its
 * own: a store across the network is filled faster). `fill(app)` runs it.
 */
export function addFillRoute (app: FastifyInstance, size: number, users: readonly string[], scenario: Scenario, concurrency = 1): void {
  const userAgent = scenario.userAgent?.()
  app.post<{ Querystring: { from: string, step: string } }>('/fill', async (request, reply: FastifyReply) => {
    for (let n = Number(request.query.from); n < size; n += Number(request.query.step)) {
      // A fresh user id string per login, as each login's request or database row brings its own.
      const userId = Buffer.from(users[Math.floor(n / SESSIONS_PER_USER)] as string, 'latin1').toString('latin1')
      if (userAgent !== undefined) request.headers['user-agent'] = userAgent(n)
      await reply.issueSession({ userId, claims: { role: 'member' } })
      // Each login's cookies belong to its own reply: this one answers them all, and would otherwise pile them up.
      reply.removeHeader('set-cookie')
    }
    return { ok: true }
  })
  fills.set(app, concurrency)
}

const fills = new WeakMap<FastifyInstance, number>()

export async function fill (app: FastifyInstance, size: number): Promise<void> {
  const concurrency = fills.get(app) ?? 1
  const responses = await Promise.all(Array.from({ length: concurrency }, async (_, from) =>
    await app.inject({ method: 'POST', url: `/fill?from=${from}&step=${concurrency}` })))
  const failed = responses.find((response) => response.statusCode !== 200)
  if (failed !== undefined) throw new Error(`filling failed: ${failed.body}`)
  const { sessions } = await app.sessions.stats()
  if (sessions !== size) throw new Error(`expected ${size} sessions in the store, found ${sessions}`)
}

/** The `--sizes` flag as session counts. */
export function sizesOf (flag: string): number[] {
  const sizes = flag.split(',').map((size) => Number(size.replace(/_/g, '')))
  if (sizes.some((size) => !Number.isSafeInteger(size) || size < SESSIONS_PER_USER)) throw new Error(`--sizes: counts of at least ${SESSIONS_PER_USER}, got ${flag}`)
  return sizes
}
