import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import {
  fixed, integer, machine, median, parseFlags, quantile, ratio, requireBuild, ROOT, table, today, versions, writeReportSection
} from './common.js'
import { signProofs, type DpopClient } from './dpop.js'
import { CLIENT } from './redis-server.js'
import type { ServerMessage } from './server.js'
import { REDIS_URL, VARIANTS, type Variant } from './variants.js'

const USAGE = `npm run bench -- [options]

HTTP throughput and p99 latency of each variant in bench/variants.ts, each in
its own server process, loaded by autocannon from this process. Rounds
alternate the variants (ABCD ABCD ABCD); the table shows medians over rounds.
A DPoP variant's requests each carry a fresh proof, signed before the load.

  --duration <s>      measured seconds per variant and round   (default 10)
  --warmup <s>        warm-up seconds before each measurement   (default 3)
  --rounds <n>        alternated rounds                         (default 3)
  --connections <n>   concurrent connections                    (default 50)
  --only <a,b>        only these variants (default: all)
  --noise <cores>     repeat a measurement when other processes used more
                      than this many cores during it            (default 0.15)
  --retries <n>       repeats allowed per measurement           (default 3)
  --quiet <s>         before each measurement, wait up to this long for a
                      second in which other processes stay under --noise
                                                                (default 60)
  --pin <auto|off>    pin the server to the last CPU and this process to
                      the first with taskset (Linux)             (default auto)
  --cpu-prof <dir>    run the servers with --cpu-prof into <dir>/<variant>/
                      (summarise one: node --import tsx bench/profile.ts <file>)
  --smoke             tiny run (0.5 s, 1 round, 10 connections), writes nothing
  --write             write docs/benchmarks.md even with --smoke or --only`

const flags = parseFlags(process.argv.slice(2), {
  duration: 10,
  warmup: 3,
  rounds: 3,
  connections: 50,
  only: '',
  noise: 0.15,
  retries: 3,
  quiet: 60,
  pin: 'auto',
  'cpu-prof': '',
  write: false
}, { duration: 0.5, warmup: 0.2, rounds: 1, connections: 10, retries: 0 }, USAGE)

const SERVER = join(ROOT, 'bench', 'server.ts')
const CPU_COUNT = cpus().length
const pinning = flags.pin !== 'off' && process.platform === 'linux' && CPU_COUNT >= 2 && hasTaskset()

interface Sample {
  reqPerSec: number
  p99Ms: number
  /** Cores' worth of CPU used by other processes during the measurement, the host's steal included. */
  foreignCores: number
  /** Of those, the cores the host gave to other guests while this machine's wanted them (`steal`). */
  stealCores: number
  /** Cores' worth of CPU the server used: well under 1 means the load generator, not the server, set the pace. */
  serverCores: number
  /** The server's CPU time per answered request, in µs: what a request costs, whoever set the pace. */
  serverMicros: number
  /** redis-server's CPU time per answered request, in µs, for a variant that keeps its sessions in Redis; NaN otherwise. */
  redisMicros: number
  repeats: number
}

/** Busy CPU time of the whole machine, in ms (all cores). */
function machineBusyMs (): number {
  let busy = 0
  for (const cpu of cpus()) busy += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq
  return busy
}

/**
 * Time the host ran other guests while this machine's cores had work
 * (`steal` in /proc/stat, in ticks of 10 ms), in ms; 0 where there is no /proc/stat.
 * `os.cpus()` leaves it out, yet on a shared virtual machine it slows the server as another process would.
 */
function stealMs (): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/) ?? []
    return Number(fields[8] ?? 0) * 10
  } catch {
    return 0
  }
}

function ownCpuMs (): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

function hasTaskset (): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Waits (up to `maxMs`) until other processes leave the machine alone for a
 * whole second, so a measurement does not start in the middle of someone
 * else's build. Returns the cores they used in the last second sampled.
 */
async function waitForQuiet (maxMs: number): Promise<number> {
  const deadline = performance.now() + maxMs
  for (;;) {
    const busy = machineBusyMs() + stealMs()
    const own = ownCpuMs()
    const started = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const foreign = Math.max(0, machineBusyMs() + stealMs() - busy - (ownCpuMs() - own)) / (performance.now() - started)
    if (foreign <= flags.noise || performance.now() >= deadline) return foreign
  }
}

let redisClient: Redis | undefined

/**
 * redis-server's CPU time so far, in ms (`INFO cpu`, user and system), read by
 * the runner: what a Redis variant costs Redis is part of its cost.
 */
async function redisCpuMs (): Promise<number> {
  redisClient ??= new Redis(REDIS_URL, CLIENT)
  const cpu = await redisClient.info('cpu')
  const seconds = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1])
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000
}

/** A server process for one variant, ready to take load. */
class Server {
  readonly #child: ChildProcess
  readonly #exited: Promise<number | null>
  #pending: ((message: ServerMessage) => void) | undefined

  private constructor (child: ChildProcess) {
    this.#child = child
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.on('message', (message: ServerMessage) => {
      const pending = this.#pending
      this.#pending = undefined
      pending?.(message)
    })
  }

  static async start (variant: Variant): Promise<{ server: Server, port: number, headers: Record<string, string>, dpop: DpopClient | undefined }> {
    const execArgv = ['--import', 'tsx']
    // One directory per variant; Node names each file by pid and thread (tsx's loader thread writes one too: the largest file is the server's).
    if (flags['cpu-prof'] !== '') execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(flags['cpu-prof'], variant.name)}`)
    const child = fork(SERVER, [variant.name], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const server = new Server(child)
    const ready = await server.#next(30_000)
    if (ready.type !== 'ready') throw new Error(`server ${variant.name} sent ${ready.type} before ready`)
    if (pinning && child.pid !== undefined) execFileSync('taskset', ['-a', '-p', '-c', String(CPU_COUNT - 1), String(child.pid)], { stdio: 'ignore' })
    return { server, port: ready.port, headers: ready.headers, dpop: ready.dpop }
  }

  async cpuMs (): Promise<number> {
    this.#child.send({ type: 'cpu' })
    const answer = await this.#next(5000)
    if (answer.type !== 'cpu') throw new Error('server answered out of turn')
    return answer.micros / 1000
  }

  async stop (): Promise<void> {
    if (this.#child.connected) this.#child.send({ type: 'close' })
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000)
    await this.#exited
    clearTimeout(timer)
  }

  #next (timeoutMs: number): Promise<ServerMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('benchmark server did not answer')), timeoutMs)
      const failed = (code: number | null): void => { clearTimeout(timer); reject(new Error(`benchmark server exited with ${String(code)}`)) }
      this.#child.once('exit', failed)
      this.#pending = (message) => {
        clearTimeout(timer)
        this.#child.off('exit', failed)
        resolve(message)
      }
    })
  }
}

/** Where the load goes and what its requests carry. */
interface Target {
  url: string
  headers: Record<string, string>
  /** A DPoP client: each request also carries a proof of its own. */
  dpop: DpopClient | undefined
}

interface Load { responses: number, elapsedMs: number, latenciesMs: Float64Array }

/** A DPoP variant's rate for sizing its warm-up, before anything was measured. */
const DPOP_FIRST_GUESS_PER_SEC = 5000
/** A proof's `iat` may be at most the server's window (60 s by default) old when it arrives. */
const DPOP_MAX_SIGNING_MS = 30_000

/**
 * The autocannon options of one run of about `seconds`. A DPoP client's run is
 * a count of requests instead (`seconds` at `expectedRate`): one proof for each,
 * all signed before the run starts, so signing does not compete with the load
 * for the runner's core, and no proof is sent twice (the server would refuse it).
 */
async function loadOptions (target: Target, seconds: number, expectedRate: number): Promise<autocannon.Options> {
  // sampleInt: autocannon checks its duration once per sample; 100 ms lets a smoke run last under a second.
  const options = { url: target.url, headers: target.headers, connections: flags.connections, duration: seconds, sampleInt: 100 }
  if (target.dpop === undefined) return options
  const amount = Math.max(flags.connections, Math.ceil(expectedRate * seconds))
  const started = performance.now()
  const proofs = await signProofs(target.dpop, 'GET', target.url, amount)
  if (performance.now() - started > DPOP_MAX_SIGNING_MS) throw new Error(`signing ${amount} DPoP proofs took over ${DPOP_MAX_SIGNING_MS / 1000} s: the first would be stale; shorten --duration`)
  let next = 0
  return {
    ...options,
    amount,
    requests: [{
      setupRequest: (request) => {
        const dpop = proofs[next++]
        if (dpop === undefined) throw new Error('autocannon sent more requests than `amount`: no DPoP proof left')
        return { ...request, headers: { ...request.headers, dpop } }
      }
    }]
  }
}

/** One autocannon run; every response must be a 2xx, or the benchmark measures the wrong thing. */
async function load (options: autocannon.Options, record: boolean): Promise<Load> {
  let latencies = new Float64Array(record ? 1 << 16 : 0)
  let responses = 0
  const started = performance.now()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err, result) => {
      if (err !== null && err !== undefined) reject(err)
      else resolve(result)
    })
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode < 200 || statusCode > 299) return
      if (record) {
        if (responses === latencies.length) {
          const grown = new Float64Array(latencies.length * 2)
          grown.set(latencies)
          latencies = grown
        }
        latencies[responses] = responseTime
      }
      responses++
    })
  })
  const elapsedMs = performance.now() - started
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${String(options.url)}: ${result.non2xx} non-2xx responses and ${result.errors} errors: the server refuses what its own client sends (its login, or a DPoP proof)`)
  }
  return { responses, elapsedMs, latenciesMs: latencies.subarray(0, record ? responses : 0) }
}

/** Starts a fresh server, warms it up, measures, stops it. */
async function measure (variant: Variant): Promise<Omit<Sample, 'repeats'>> {
  const { server, port, headers, dpop } = await Server.start(variant)
  try {
    const target: Target = { url: `http://127.0.0.1:${port}/`, headers, dpop }
    // The warm-up's rate sizes a DPoP run; the CPU counters start after its proofs are signed.
    let rate = DPOP_FIRST_GUESS_PER_SEC
    if (flags.warmup > 0) {
      const warm = await load(await loadOptions(target, flags.warmup, rate), false)
      rate = warm.responses / (warm.elapsedMs / 1000)
    }
    const options = await loadOptions(target, flags.duration, rate)
    const busyBefore = machineBusyMs()
    const stealBefore = stealMs()
    const ownBefore = ownCpuMs()
    const serverBefore = await server.cpuMs()
    const redisBefore = variant.redis === true ? await redisCpuMs() : NaN
    const run = await load(options, true)
    const serverUsed = (await server.cpuMs()) - serverBefore
    const redisUsed = variant.redis === true ? await redisCpuMs() - redisBefore : NaN
    const ownUsed = ownCpuMs() - ownBefore
    const busyUsed = machineBusyMs() - busyBefore
    const stealUsed = stealMs() - stealBefore
    return {
      reqPerSec: run.responses / (run.elapsedMs / 1000),
      p99Ms: quantile(run.latenciesMs, 0.99),
      // redis-server is the variant's own, not another process's.
      foreignCores: (Math.max(0, busyUsed - serverUsed - ownUsed - (Number.isNaN(redisUsed) ? 0 : redisUsed)) + stealUsed) / run.elapsedMs,
      stealCores: stealUsed / run.elapsedMs,
      serverCores: serverUsed / run.elapsedMs,
      serverMicros: serverUsed * 1000 / run.responses,
      redisMicros: redisUsed * 1000 / run.responses
    }
  } finally {
    await server.stop()
  }
}

async function main (): Promise<void> {
  requireBuild()
  if (pinning) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })
  const wanted = flags.only === '' ? undefined : new Set(flags.only.split(','))
  const runnable: Variant[] = []
  const skipped: Array<{ variant: Variant, reason: string }> = []
  for (const variant of VARIANTS) {
    if (wanted !== undefined && !wanted.has(variant.name)) continue
    const reason = await variant.missing?.()
    if (reason === undefined) runnable.push(variant)
    else {
      skipped.push({ variant, reason })
      console.log(`skipping ${variant.name}: ${reason}`)
    }
  }
  if (runnable.length === 0) throw new Error('no variant to run')
  console.log(`${runnable.length} variants × ${flags.rounds} rounds × (${flags.warmup} s warm-up + ${flags.duration} s), ${flags.connections} connections${pinning ? `, server pinned to CPU ${CPU_COUNT - 1}` : ''}`)

  // The machine may be shared: the report says how busy it was.
  const loadAtStart = loadavg()[0] ?? NaN
  const samples = new Map<string, Sample[]>(runnable.map((v) => [v.name, []]))
  for (let round = 1; round <= flags.rounds; round++) {
    for (const variant of runnable) {
      let repeats = 0
      if (flags.retries > 0) await waitForQuiet(flags.quiet * 1000)
      let sample = await measure(variant)
      while (sample.foreignCores > flags.noise && repeats < flags.retries) {
        repeats++
        console.log(`  round ${round} ${variant.name}: other processes used ${sample.foreignCores.toFixed(2)} cores; repeating (${repeats}/${flags.retries})`)
        await waitForQuiet(flags.quiet * 1000)
        sample = await measure(variant)
      }
      samples.get(variant.name)?.push({ ...sample, repeats })
      console.log(`  round ${round} ${variant.name.padEnd(18)} ${integer(sample.reqPerSec).padStart(7)} req/s  p99 ${fixed(sample.p99Ms, 2)} ms  server ${sample.serverCores.toFixed(2)} cores ${fixed(sample.serverMicros, 1)} µs/req${Number.isNaN(sample.redisMicros) ? '' : ` + Redis ${fixed(sample.redisMicros, 1)} µs/req`}  others ${sample.foreignCores.toFixed(2)} cores (steal ${sample.stealCores.toFixed(2)})`)
    }
  }

  redisClient?.disconnect()
  const markdown = report(runnable, samples, skipped, [loadAtStart, loadavg()[0] ?? NaN])
  console.log(`\n${markdown}`)
  if ((!flags.smoke && wanted === undefined) || flags.write) {
    console.log(`\nwrote ${writeReportSection('http', markdown)}`)
  }
}

const isClean = (sample: Sample): boolean => sample.foreignCores <= flags.noise

/** The clean measurements, or all of them when none is clean. */
function usable (samples: Sample[]): Sample[] {
  const clean = samples.filter(isClean)
  return clean.length > 0 ? clean : samples
}

/**
 * Per-round ratio against a baseline, then the median: rounds pair variants
 * measured minutes apart, not hours. Only rounds where both are clean count,
 * when there is one.
 */
function medianRatio (of: Sample[] | undefined, to: Sample[] | undefined): number {
  if (of === undefined || to === undefined || of.length === 0 || of.length !== to.length) return NaN
  const pairs = of.map((sample, i) => [sample, to[i] as Sample] as const)
  const clean = pairs.filter(([a, b]) => isClean(a) && isClean(b))
  return median((clean.length > 0 ? clean : pairs).map(([a, b]) => a.reqPerSec / b.reqPerSec))
}

/** What a DPoP-bound request costs beside a cookie-bound one on the same store (issue 13). */
function dpopCost (samples: Map<string, Sample[]>): string[] {
  const cookie = samples.get('guard-memory')
  const variants: ReadonlyArray<readonly [alg: string, name: string]> = [['ES256', 'guard-dpop-es256'], ['EdDSA', 'guard-dpop-eddsa']]
  return variants.map(([alg, name]) => {
    const own = samples.get(name)
    if (own === undefined || cookie === undefined) return `- DPoP-bound request, ${alg} proof: not measured (${name} or guard-memory not run)`
    const micros = median(usable(own).map((s) => s.serverMicros))
    const cookieMicros = median(usable(cookie).map((s) => s.serverMicros))
    return `- DPoP-bound request, ${alg} proof, vs cookie-bound (memory store): ${ratio(medianRatio(own, cookie))} the req/s,` +
      ` ${fixed(micros, 1)} vs ${fixed(cookieMicros, 1)} µs of server CPU per request (+${fixed(micros - cookieMicros, 1)} µs)`
  })
}

/** A target ratio as the issue states it: 1.2, 0.85. */
function goalText (goal: number): string {
  return goal.toFixed(Number.isInteger(Math.round(goal * 100) / 10) ? 1 : 2)
}

/** The median server CPU plus redis-server CPU per request (server only for a variant without Redis). */
function totalMicros (samples: Sample[]): number {
  const kept = usable(samples)
  const redis = median(kept.map((s) => s.redisMicros))
  return median(kept.map((s) => s.serverMicros)) + (Number.isNaN(redis) ? 0 : redis)
}

/** Each target of the issue, met or missed by how much, or why it could not be checked. */
function targets (samples: Map<string, Sample[]>): string[] {
  const p99 = (name: string): number => {
    const own = samples.get(name)
    return own === undefined || own.length === 0 ? NaN : median(usable(own).map((s) => s.p99Ms))
  }
  const atLeast = (what: string, of: string, to: string, goal: number): string => {
    const value = medianRatio(samples.get(of), samples.get(to))
    if (!Number.isFinite(value)) return `- ${what} ≥ ${goalText(goal)}×: not measured (${of} or ${to} not run)`
    const a = samples.get(of) as Sample[]
    const b = samples.get(to) as Sample[]
    const clean = a.some((sample, i) => isClean(sample) && isClean(b[i] as Sample))
    return `- ${what} ≥ ${goalText(goal)}×: ${value >= goal ? 'met' : `missed by ${((1 - value / goal) * 100).toFixed(0)} %`} (${ratio(value)})` +
      (clean ? '' : ' — from noisy rounds only: not reliable')
  }
  /** How many times less server plus redis-server CPU a request of `of` costs than one of `to`, from the medians. */
  const cheaper = (what: string, of: string, to: string, goal: number): string => {
    const a = samples.get(of)
    const b = samples.get(to)
    if (a === undefined || b === undefined) return `- ${what} ≥ ${goalText(goal)}×: not measured (${of} or ${to} not run)`
    const value = totalMicros(b) / totalMicros(a)
    return `- ${what} ≥ ${goalText(goal)}×: ${value >= goal ? 'met' : `missed by ${((1 - value / goal) * 100).toFixed(0)} %`} (${ratio(value)}:` +
      ` ${fixed(totalMicros(a), 1)} vs ${fixed(totalMicros(b), 1)} µs)`
  }
  const guardP99 = p99('guard-memory')
  const jwtP99 = p99('jwt')
  return [
    atLeast('guard on the memory store vs @fastify/jwt', 'guard-memory', 'jwt', 1.0),
    atLeast('guard on the memory store vs @fastify/session', 'guard-memory', 'session', 1.4),
    atLeast('guard on Redis with local cache vs the memory store', 'guard-redis-cache', 'guard-memory', 0.9),
    atLeast('guard on Redis without local cache vs the memory store', 'guard-redis', 'guard-memory', 0.6),
    // Issue 17.
    atLeast('guard on PostgreSQL with local cache vs the memory store', 'guard-postgres-cache', 'guard-memory', 0.9),
    // Issue 16: against bare Fastify, and each peer in its best configuration.
    atLeast('guard on the memory store vs bare Fastify', 'guard-memory', 'bare', 0.85),
    atLeast('guard on the memory store vs @fastify/jwt with verify.cache', 'guard-memory', 'jwt-cache', 1.5),
    atLeast('guard on Redis without local cache vs @fastify/session + connect-redis', 'guard-redis', 'session-redis', 1.2),
    cheaper('guard on Redis without local cache vs @fastify/session + connect-redis, in server + redis-server CPU per request', 'guard-redis', 'session-redis', 1.2),
    atLeast('… the same on an ioredis 5 client', 'guard-redis-ioredis5', 'session-redis', 1.2),
    cheaper('… the same on an ioredis 5 client, in server + redis-server CPU per request', 'guard-redis-ioredis5', 'session-redis', 1.2),
    Number.isFinite(guardP99) && Number.isFinite(jwtP99)
      ? `- guard p99 ≤ @fastify/jwt p99: ${guardP99 <= jwtP99 ? 'met' : `missed by ${fixed(guardP99 - jwtP99, 2)} ms`} (${fixed(guardP99, 2)} vs ${fixed(jwtP99, 2)} ms)`
      : '- guard p99 ≤ @fastify/jwt p99: not measured'
  ]
}

function report (runnable: Variant[], samples: Map<string, Sample[]>, skipped: Array<{ variant: Variant, reason: string }>, load: readonly [start: number, end: number]): string {
  const jwt = samples.get('jwt')
  const jwtCache = samples.get('jwt-cache')
  const session = samples.get('session')
  const sessionRedis = samples.get('session-redis')
  const bare = samples.get('bare')
  const rows = runnable.map((variant) => {
    const own = samples.get(variant.name) as Sample[]
    const noisy = own.filter((s) => !isClean(s)).length
    const kept = usable(own)
    return [
      variant.label,
      integer(median(kept.map((s) => s.reqPerSec))),
      fixed(median(kept.map((s) => s.p99Ms)), 2),
      ratio(medianRatio(own, bare)),
      ratio(medianRatio(own, jwt)),
      ratio(medianRatio(own, jwtCache)),
      ratio(medianRatio(own, session)),
      ratio(medianRatio(own, sessionRedis)),
      fixed(median(kept.map((s) => s.serverCores)), 2),
      fixed(median(kept.map((s) => s.serverMicros)), 1),
      variant.redis === true ? fixed(median(kept.map((s) => s.redisMicros)), 1) : '–',
      `${own.length}${noisy > 0 ? ` (${noisy} noisy)` : ''}`
    ]
  })
  const lines = [
    '## HTTP: throughput and p99 latency',
    '',
    table(['variant', 'req/s', 'p99 ms', 'vs bare', 'vs jwt', 'vs jwt cached', 'vs session', 'vs session + Redis', 'server CPU', 'server µs/req', 'Redis µs/req', 'rounds'], rows),
    '',
    'The peers, each column against its row: "jwt" is `@fastify/jwt` verifying every request (`request.jwtVerify()`), "jwt' +
    ' cached" the same with its own cache of verified tokens (`verify: { cache: true }`, its best configuration), "session"' +
    ' `@fastify/session` on its memory store, "session + Redis" `@fastify/session` with `connect-redis` (node-redis) on the same' +
    ' Redis as the guard\'s Redis rows. "Redis µs/req", for the rows that keep their sessions in Redis, is redis-server\'s CPU' +
    ' time (`INFO cpu`, user and system) over the measurement divided by the requests answered: what the row costs Redis, counted' +
    ' with the server\'s in the Redis target.',
    ''
  ]
  for (const { variant, reason } of skipped) lines.push(`- *${variant.label}*: not run (${reason}).`)
  if (skipped.length > 0) lines.push('')
  lines.push('Targets (issues 7, 16 and 17), from this run:', '', ...targets(samples), '')
  lines.push('DPoP (issue 13), from this run:', '', ...dpopCost(samples), '')
  const pkg = versions(['fastify', '@fastify/jwt', 'fast-jwt', '@fastify/session', '@fastify/cookie', 'connect-redis', 'redis', 'ioredis', 'lru-cache', 'autocannon'])
  lines.push(
    `Run on ${today()}: ${machine()}, load average ${load[0].toFixed(1)} at the start and ${load[1].toFixed(1)} at the end.`,
    `Packages: ${Object.entries(pkg).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    'Each variant (bench/variants.ts) is a minimal server in its own process answering `GET /` with a small JSON body,' +
    ` after one login done before listening. autocannon runs in the runner process: ${flags.connections} connections,` +
    ` ${flags.warmup} s of warm-up then ${flags.duration} s measured, ${flags.rounds} rounds alternating the variants,` +
    ` a fresh server process for every measurement${pinning ? ', the server pinned to one core and the runner to the other' : ''}.` +
    ' req/s and p99 (every 2xx latency, µs resolution) are medians over rounds; a ratio is the median of the per-round ratios,' +
    ' so both sides of it come from the same round. Any non-2xx response fails the run. "server CPU" is the cores the server' +
    ' process used while measured: near 1 the server is the bottleneck; well below 1 the load generator (one core, shared' +
    ' with nothing else) could not send faster, and that row\'s req/s and ratios understate the server. "server µs/req" is the' +
    ' server\'s CPU time divided by the requests it answered: the cost of a request whoever set the pace.',
    '',
    'A DPoP-bound row logs in with a `DPoP` proof of a fresh key (ES256 or EdDSA, made with `jose`); every request then' +
    ' sends `Authorization: DPoP <token>` and a proof of its own (`jti`, `iat`, `ath`, `htm`, `htu`), which the server checks' +
    ' and records as used. The runner signs all the proofs of a run before it starts, so signing does not compete with the' +
    ' load: that run is a count of requests (its warm-up\'s rate times the duration, one proof each) rather than a duration.',
    '',
    'Noise guard: during each measurement the runner reads the machine\'s busy CPU time (`os.cpus()`) and subtracts its own' +
    ' (`process.cpuUsage()`) and the server\'s (asked over IPC); what is left was used by other processes. On Linux it adds the' +
    ' time the host ran other guests while this machine\'s cores had work (`steal` in /proc/stat), which `os.cpus()` leaves out.' +
    ' When that exceeds' +
    ` ${flags.noise} cores on average the measurement is repeated, up to ${flags.retries} times; "noisy" counts rounds still noisy` +
    ' after that, which are left out of the medians and ratios whenever a clean round exists.' +
    ` Before each measurement the runner also waits (up to ${flags.quiet} s) for one second in which other processes stay under that.`,
    '',
    `Reproduce: \`npm run bench\` (this run: \`npm run bench -- --duration ${flags.duration} --rounds ${flags.rounds} --connections ${flags.connections}` +
    ` --noise ${flags.noise} --retries ${flags.retries} --quiet ${flags.quiet}\`).`,
    'It builds `dist/` first and measures that build.'
  )
  return lines.join('\n')
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
