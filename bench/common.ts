import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'

/** The repository root (bench/ sits one level below it). */
export const ROOT = join(__dirname, '..')

/** Median of a non-empty list. */
export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1
    ? sorted[middle] as number
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** The q-quantile (0..1) of values, nearest rank; sorts `values` in place. */
export function quantile (values: Float64Array, q: number): number {
  if (values.length === 0) return NaN
  values.sort()
  return values[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)] as number
}

/** A Markdown table, readable as plain text too: columns padded, numbers right-aligned. */
export function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)))
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((row) => /^[\d.,×x%µ+-]+( ?[a-zµ/]+)?$|^–$/.test(row[i] ?? '')))
  const cell = (text: string, i: number): string => numeric[i] === true ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number)
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |`
  const rule = `|${widths.map((width, i) => numeric[i] === true ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

/** 12345.6 -> '12,346'. */
export function integer (value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–'
}

/** A number with `digits` decimals, or '–'. */
export function fixed (value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

/** A ratio such as '1.23×'. */
export function ratio (value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–'
}

/** Versions of the packages a benchmark loads, read from their package.json. */
export function versions (names: readonly string[]): Record<string, string> {
  const found: Record<string, string> = {}
  for (const name of names) {
    const file = join(ROOT, 'node_modules', name, 'package.json')
    found[name] = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : 'not installed'
  }
  const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string }
  return { [own.name]: own.version, ...found }
}

/** CPU model, cores, memory and Node version, for the report. */
export function machine (): string {
  const list = cpus()
  const model = list[0]?.model.trim() ?? 'unknown CPU'
  const memory = `${Math.round(totalmem() / 2 ** 30)} GiB RAM`
  return `${model}, ${list.length} cores, ${memory}, Node ${process.version} (${process.platform} ${process.arch})`
}

const REPORT = join(ROOT, 'docs', 'benchmarks.md')
/** The report's sections, in the order they appear. */
const SECTIONS = ['http', 'store', 'memory', 'redis-memory', 'geo', 'cluster', 'revocation']

const INTRO = `# Benchmarks

Measured by the scripts in \`bench/\`; each section below is rewritten by the command that produced it,
so sections may come from different runs. Figures depend on the machine: compare the ratios measured in
the same run, not absolute numbers across machines.

The \`bench*\` commands first build \`dist/\` and measure that build (what users run); the scripts themselves run
under \`tsx\`. Each accepts \`--smoke\` (tiny sizes, writes nothing) and \`--help\`.
`

/**
 * Replaces (or appends) one section of `docs/benchmarks.md`, between markers,
 * so each command updates its own figures and leaves the others alone.
 */
export function writeReportSection (name: string, markdown: string): string {
  const start = `<!-- bench:${name}:start -->`
  const end = `<!-- bench:${name}:end -->`
  const block = `${start}\n${markdown.trim()}\n${end}`
  const current = existsSync(REPORT) ? readFileSync(REPORT, 'utf8') : INTRO
  const from = current.indexOf(start)
  const to = current.indexOf(end)
  // A new section goes before the first section that comes after it in SECTIONS, else at the end.
  const later = SECTIONS.slice(SECTIONS.indexOf(name) + 1).map((after) => current.indexOf(`<!-- bench:${after}:start -->`)).filter((at) => at !== -1)
  const before = later.length > 0 ? Math.min(...later) : -1
  const next = from !== -1 && to > from
    ? current.slice(0, from) + block + current.slice(to + end.length)
    : before !== -1
      ? `${current.slice(0, before)}${block}\n\n${current.slice(before)}`
      : `${current.trimEnd()}\n\n${block}\n`
  mkdirSync(dirname(REPORT), { recursive: true })
  writeFileSync(REPORT, next)
  return REPORT
}

/** Today's date as YYYY-MM-DD (UTC). */
export function today (): string {
  return new Date().toISOString().slice(0, 10)
}

/** Throws when `dist/` is missing: the benchmarks measure the build. */
export function requireBuild (): void {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (the npm scripts do)')
  }
}

export interface Timing {
  /** Median nanoseconds per operation over the samples. */
  nsPerOp: number
  /** Operations per second at that median. */
  opsPerSec: number
  /** Operations measured in all samples together. */
  ops: number
  samples: number
}

/**
 * A plain timing loop (no benchmarking library is a dependency): runs `op`
 * in batches of `batch` calls for `warmupMs` to let the JIT settle, then for
 * `timeMs` more, timing each batch with `process.hrtime.bigint()`. Reports
 * the median batch. `op` gets a running counter so it can walk a prepared
 * list of inputs; each call is awaited, as the plugin awaits its store.
 * `maxOps` caps the calls (warm-up included, at most a quarter of them) for
 * operations that consume their inputs.
 */
export async function timeAsync (
  op: (i: number) => Promise<unknown>,
  { batch = 1000, warmupMs = 300, timeMs = 1000, maxOps = Infinity }: { batch?: number, warmupMs?: number, timeMs?: number, maxOps?: number } = {}
): Promise<Timing> {
  let i = 0
  const warmupEnd = performance.now() + warmupMs
  const warmupOps = maxOps / 4
  while (performance.now() < warmupEnd && i + batch <= warmupOps) {
    for (let n = 0; n < batch; n++) await op(i++)
  }
  const perBatch: number[] = []
  const end = performance.now() + timeMs
  do {
    const started = process.hrtime.bigint()
    for (let n = 0; n < batch; n++) await op(i++)
    perBatch.push(Number(process.hrtime.bigint() - started) / batch)
  } while (performance.now() < end && i + batch <= maxOps)
  const nsPerOp = median(perBatch)
  return { nsPerOp, opsPerSec: 1e9 / nsPerOp, ops: perBatch.length * batch, samples: perBatch.length }
}

/** Parses `--name value` / `--flag` arguments into numbers and booleans, refusing unknown names. */
export function parseFlags<T extends Record<string, number | boolean | string>> (
  argv: readonly string[],
  defaults: T,
  smoke: Partial<T>,
  usage: string
): T & { smoke: boolean } {
  const flags: Record<string, number | boolean | string> = { ...defaults }
  const given = new Set<string>()
  let smokeMode = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--help' || arg === '-h') {
      console.log(usage)
      process.exit(0)
    }
    if (arg === '--smoke') {
      smokeMode = true
      continue
    }
    const name = arg.replace(/^--/, '')
    if (!arg.startsWith('--') || !(name in defaults)) throw new Error(`unknown argument ${arg}\n\n${usage}`)
    given.add(name)
    const kind = typeof defaults[name]
    if (kind === 'boolean') {
      flags[name] = true
      continue
    }
    const value = argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    if (kind === 'number') {
      const number = Number(value.replace(/_/g, ''))
      if (!Number.isFinite(number) || number < 0) throw new Error(`${arg} must be a non-negative number, got ${value}`)
      flags[name] = number
    } else {
      flags[name] = value
    }
  }
  if (smokeMode) {
    // Smoke sizes, unless a flag was given explicitly.
    for (const [name, value] of Object.entries(smoke)) if (!given.has(name)) flags[name] = value as number | boolean | string
  }
  return { ...(flags as T), smoke: smokeMode }
}
