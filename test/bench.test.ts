import { execFile } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { leftNoKeys, uniquePrefix } from './stores/redis-helper.js'

/**
 * Smoke runs of the benchmark commands in their tiny mode: each must
 * exit 0 and print its table with every row. Speed is never asserted. The
 * commands measure the build, so `npm test` builds first.
 */

const ROOT = join(__dirname, '..')
// The file as a whole: eight child processes, longer than tap's default when the machine is busy.
t.setTimeout(240_000)

interface Run { code: number | null, stdout: string, stderr: string }

// The Redis variants' keys go under a prefix of this file's, which the last test checks.
const REDIS_PREFIX = uniquePrefix()

function run (script: string, args: string[], nodeArgs: string[] = []): Promise<Run> {
  // No coverage from the children: they load dist/ and bench/, which this suite does not cover.
  // tap's process hooks pass themselves on to every child; this is their documented switch.
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', BENCH_REDIS_PREFIX: REDIS_PREFIX }
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, 'bench', script), ...args], { cwd: ROOT, env, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** A table row for `label`, or the line saying why it was not run. */
function rowOrSkip (output: string, label: string): boolean {
  return output.includes(`| ${label} `) || output.includes(`*${label}*: not`)
}

t.test('npm run bench -- --smoke: every variant has a row or a reason', async (t) => {
  t.setTimeout(120_000)
  const { code, stdout, stderr } = await run('http.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| variant +\| +req\/s \| p99 ms \| vs bare \| vs jwt \| vs jwt cached \| vs session \| vs session \+ Redis \|/)
  // The DPoP rows sign a proof per request: a proof the server refuses (replayed, stale, wrong URL) is a non-2xx, which fails the run.
  for (const label of [
    'bare Fastify (no auth)', '@fastify/jwt only (request.jwtVerify, HS256)', '@fastify/jwt with verify.cache (request.jwtVerify, HS256)', '@fastify/session (memory store)', 'session guard, memory store',
    'session guard, memory store, DPoP-bound (ES256 proofs)', 'session guard, memory store, DPoP-bound (EdDSA proofs)'
  ]) {
    t.match(stdout, new RegExp(`\\| ${label.replace(/[()/.]/g, '\\$&')} +\\| +[\\d,]+ \\| +[\\d.]+ \\|`), label)
  }
  for (const label of [
    'session guard, Redis store + local cache', 'session guard, Redis store, no local cache', 'session guard, Redis store, no local cache, ioredis 5 client', '@fastify/session + connect-redis (node-redis)',
    'session guard, PostgreSQL store + local cache', 'session guard, PostgreSQL store, no local cache',
    'session guard, memory store, full device metadata'
  ]) {
    t.ok(rowOrSkip(stdout, label), label)
  }
  // A Redis row's cost counts redis-server's CPU beside the server's.
  if (stdout.includes('| session guard, Redis store, no local cache ')) {
    t.match(stdout, /\| session guard, Redis store, no local cache +\|.*\| +[\d.]+ \| +[\d.]+ \| +1( \(1 noisy\))? +\|/, 'redis-server µs per request on the Redis row')
    t.match(stdout, /- guard on Redis without local cache vs @fastify\/session \+ connect-redis, in server \+ redis-server CPU per request ≥ 1\.2×: (met|missed by \d+ %) \([\d.]+×: [\d.]+ vs [\d.]+ µs\)/)
  }
  t.match(stdout, /\| session guard, memory store +\|.*\| +[\d.]+ \| +– \| +1( \(1 noisy\))? +\|/, 'none on a row without Redis')
  t.match(stdout, /- DPoP-bound request, ES256 proof, vs cookie-bound \(memory store\): [\d.]+× the req\/s, [\d.]+ vs [\d.]+ µs of server CPU per request/)
  t.match(stdout, /- DPoP-bound request, EdDSA proof, vs cookie-bound \(memory store\): [\d.]+× the req\/s, [\d.]+ vs [\d.]+ µs of server CPU per request/)
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:store -- --smoke: every operation has a row', async (t) => {
  t.setTimeout(60_000)
  const { code, stdout, stderr } = await run('store.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  for (const operation of [
    'get (random live id)',
    'touch (record activity)',
    'create-with-limit (under the limit of 15)',
    'create-with-limit (at the limit of 3, evicts one)',
    'revoke',
    "list a user's sessions (3)",
    'login: reply.issueSession() incl. HS256 signature',
    'login: whole request through app.inject (context)',
    'guard: requireSession, one token (per request)',
    'guard: requireSession, 50 tokens in turn'
  ]) {
    t.match(stdout, new RegExp(`\\| ${operation.replace(/[()/.]/g, '\\$&')} +\\| +[\\d,]+ \\| +[\\d.]+ \\| +[\\d,]+ \\|`), operation)
  }
  t.match(stdout, /Listing a user's sessions at [\d,]+ vs [\d,]+ sessions: [\d.]+× the time/)
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:memory -- --smoke: bytes per session for each scenario', async (t) => {
  t.setTimeout(60_000)
  const { code, stdout, stderr } = await run('memory.ts', ['--smoke'], ['--expose-gc'])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| sessions hold +\| sessions \| heap B\/session \| store capacity B\/slot \| ArrayBuffer B\/session \| total B\/session \|/)
  t.match(stdout, /\| session with app claims, no device metadata +\| +3,000 \| +[\d,]+ \|/)
  t.match(stdout, /\| session with app claims and full device metadata +\| +3,000 \| +[\d,]+ \|/)
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:redis-memory -- --smoke: bytes of Redis per session, and what each kind of key holds', async (t) => {
  t.setTimeout(90_000)
  const { code, stdout, stderr } = await run('redis-memory.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  for (const label of ['session with app claims, no device metadata', 'session with app claims and full device metadata']) {
    t.match(stdout, new RegExp(`\\| ${label} +\\| +3,000 \\| +[\\d,]+ \\| +[\\d,]+ \\| +[\\d.]+ \\|`), label)
  }
  for (const scenario of ['claims', 'device']) {
    for (const kind of ['sessions', 'user indexes', 'login histories', 'id lookups', 'stats']) {
      t.match(stdout, new RegExp(`\\| ${scenario} +\\| +3,000 \\| ${kind} +\\| +[\\d,]+ \\| +[\\d,]+ \\| +[\\d,]+ \\| [a-z]`), `${scenario}: ${kind}`)
    }
  }
  t.notMatch(stdout, /\| other /, 'every key is of a kind the store writes')
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:geo -- --smoke: the cost of each kind of lookup on the example\'s database', async (t) => {
  t.setTimeout(90_000)
  const { code, stdout, stderr } = await run('geo.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| lookup: resolveLocation\(ip\) +\| +µs\/op \| CPU µs\/op \| +ops\/s \| found \|/)
  for (const label of ['IPv4, random public addresses', 'IPv4, one address again and again', 'IPv6, random addresses in 2a00::/12', 'IPv4-mapped IPv6 (::ffff:a.b.c.d)']) {
    t.match(stdout, new RegExp(`\\| ${label.replace(/[()/.:]/g, '\\$&')} +\\| +[\\d.]+ \\| +[\\d.]+ \\| +[\\d,]+ \\| +[1-9]\\d* % \\|`), `${label}: found some`)
  }
  t.match(stdout, /\| private IPv4 \(10\.0\.0\.0\/8\), not found +\| +[\d.]+ \| +[\d.]+ \| +[\d,]+ \| 0 % +\|/)
  t.match(stdout, /Opening the two files \(134 MB, read whole into memory\): [\d,]+ ms/)
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:cluster -- --smoke: each master\'s commands, with one stats shard and with 32', async (t) => {
  t.setTimeout(90_000)
  const { code, stdout, stderr } = await run('cluster.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| stats layout \| master +\| +commands \| vs mean +\|/)
  for (const layout of ['one shard', '32 shards']) {
    for (const master of [1, 2, 3]) {
      t.match(stdout, new RegExp(`\\| ${layout} +\\| master ${master} \\| +[\\d,]+ \\| [+-][\\d.]+ % +\\|`), `${layout}, master ${master}`)
    }
  }
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('npm run bench:revocation -- --smoke: the distribution from a revoke on one instance to the refusal on another', async (t) => {
  t.setTimeout(90_000)
  const { code, stdout, stderr } = await run('revocation.ts', ['--smoke'])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| measured from +\| revocations \| p50 ms \| p90 ms \| p99 ms \| max ms \| target \|/)
  t.match(stdout, /\| the call to revoke\(\) \| +20 \| +[\d.]+ \| +[\d.]+ \| +[\d.]+ \| +[\d.]+ \| +\|/)
  t.match(stdout, /\| revoke\(\) resolved +\| +20 \| +[\d.]+ \| +[\d.]+ \| +[\d.]+ \| +[\d.]+ \| (met|missed by [\d.]+ ms) +\|/)
  t.match(stdout, /Meanwhile 4 other sessions read B back to back\n\([\d,]+ reads\/s\)/)
  t.match(stdout, /Accepted after the ack: [\d,]+ requests, in [\d,]+ of 20 revocations\./)
  t.notMatch(stdout, /^wrote /m, 'a smoke run writes no report')
})

t.test('bench:memory refuses to run without --expose-gc rather than print made-up figures', async (t) => {
  t.setTimeout(60_000)
  const { code, stderr } = await run('memory.ts', ['--smoke'])
  t.not(code, 0)
  t.match(stderr, /--expose-gc/)
})

leftNoKeys(t)
