import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redisStore } from 'fastify-session-guard/redis'
import { Cluster, Redis } from 'ioredis'
import { integer, machine, parseFlags, requireBuild, table, today, writeReportSection } from './common.js'
import { sessionRecord, userIds } from './sessions.js'

const USAGE = `npm run bench:cluster -- [options]

The write split of a login/logout load over a three-master Redis Cluster that
this benchmark starts (redis-server on free ports of 127.0.0.1, stopped by pid),
with the stats bookkeeping in one shard (the layout before statsShards) and in
the default 32: commands each master processed, and its distance from the mean.

  --users <n>     users, each signing in and out once per round  (default 20000)
  --smoke         tiny sizes, writes nothing
  --write         write docs/benchmarks.md even with --smoke`

const flags = parseFlags(process.argv.slice(2), { users: 20_000, write: false }, { users: 300 }, USAGE)
const MASTERS = 3
const CONCURRENCY = 32
const LIMIT = { max: 15, onLimit: 'evict-oldest' } as const
const CLIENT = { maxRetriesPerRequest: 1, commandTimeout: 5000, retryStrategy: () => null }

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

/** A private three-master Cluster: its ports; its servers go into `servers` as they start, to be stopped whatever happens. */
async function startCluster (dir: string, servers: ChildProcess[]): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < MASTERS) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  for (const port of ports) {
    servers.push(spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`
    ], { stdio: 'ignore' }))
  }
  for (const port of ports) await until(async () => await ping(port), 'redis-server to start')
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' })
  if (create.status !== 0) throw new Error('redis-cli --cluster create failed')
  for (const port of ports) await until(async () => (await clusterInfo(port)).includes('cluster_state:ok'), 'cluster_state:ok')
  return ports
}

async function ping (port: number): Promise<boolean> {
  const client = new Redis(port, '127.0.0.1', { ...CLIENT, lazyConnect: true })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.ping() === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

async function info (port: number, section: string): Promise<string> {
  return await ask(port, async (client) => await client.info(section))
}

/** `CLUSTER INFO` (the INFO command's cluster section has no `cluster_state`). */
async function clusterInfo (port: number): Promise<string> {
  return await ask(port, async (client) => await client.cluster('INFO') as string)
}

async function ask (port: number, command: (client: Redis) => Promise<string>): Promise<string> {
  const client = new Redis(port, '127.0.0.1', CLIENT)
  client.on('error', () => {})
  try {
    return await command(client)
  } finally {
    client.disconnect()
  }
}

async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 15_000
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Commands each master has processed so far. */
async function processed (ports: number[]): Promise<number[]> {
  return await Promise.all(ports.map(async (port) => Number(/total_commands_processed:(\d+)/.exec(await info(port, 'stats'))?.[1])))
}

/** Every user signs in once and out once, `CONCURRENCY` at a time, through a store with `statsShards`. */
async function load (ports: number[], statsShards: number, users: readonly string[]): Promise<number[]> {
  const store = redisStore({
    cluster: { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), options: { redisOptions: CLIENT } },
    prefix: `bench-cluster-${statsShards}:`,
    statsShards
  })
  const now = Date.now()
  await store.open({ now: () => now, onRemoved: () => {} })
  const before = await processed(ports)
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < users.length) {
      const session = sessionRecord(users[next++] as string, now, next)
      await store.create(session, LIMIT, now)
      await store.revoke(session.id, now)
    }
  }))
  const after = await processed(ports)
  await store.close()
  return after.map((count, i) => count - (before[i] as number))
}

/** Each master's share as a row: commands, and its distance from the mean. */
function rows (layout: string, counts: number[]): string[][] {
  const mean = counts.reduce((sum, count) => sum + count, 0) / counts.length
  return counts.map((count, i) => {
    const off = (count - mean) / mean * 100
    return [layout, `master ${i + 1}`, integer(count), `${off >= 0 ? '+' : ''}${off.toFixed(1)} %`]
  })
}

async function main (): Promise<void> {
  requireBuild()
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-cluster-'))
  const servers: ChildProcess[] = []
  try {
    const ports = await startCluster(dir, servers)
    const users = userIds(flags.users)
    const admin = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: CLIENT })
    const slots = await admin.cluster('SLOTS') as Array<[number, number]>
    admin.disconnect()
    const one = await load(ports, 1, users)
    const sharded = await load(ports, 32, users)
    const markdown = [
      '## Redis Cluster: the write split',
      '',
      `${today()}, ${machine()}. \`npm run bench:cluster${flags.smoke ? ' -- --smoke' : ''}\`: a private three-master`,
      `Cluster (${slots.map(([from, to]) => `${from}–${to}`).join(', ')}), ${integer(users.length)} users each signing in and out once`,
      `through the Redis store, ${CONCURRENCY} at a time, once with the stats bookkeeping in one shard (the layout before`,
      '`statsShards`) and once in the default 32. Commands each master processed during the load (`total_commands_processed`),',
      'counting the commands the scripts run, and its distance from the mean of the three. The target: each master within ±25 %',
      'of the mean.',
      '',
      table(['stats layout', 'master', 'commands', 'vs mean'], [...rows('one shard', one), ...rows('32 shards', sharded)])
    ].join('\n')
    console.log(markdown)
    if (!flags.smoke || flags.write) console.log(`wrote ${writeReportSection('cluster', markdown)}`)
  } finally {
    for (const server of servers) server.kill('SIGTERM')
    await Promise.all(servers.map(async (server) => server.exitCode === null ? await once(server, 'exit') : undefined))
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
