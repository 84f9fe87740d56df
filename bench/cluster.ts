import { spawnSync } from 'node:child_process'
import { redisStore } from 'fastify-session-guard/redis'
import { Cluster } from 'ioredis'
import { integer, machine, parseFlags, requireBuild, table, today, writeReportSection } from './common.js'
import { ask, CLIENT, info, until, withRedisServers } from './redis-server.js'
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

/** Makes the private servers at `ports` one three-master Cluster, and waits until it is ready. */
async function createCluster (ports: readonly number[]): Promise<void> {
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' })
  if (create.status !== 0) throw new Error('redis-cli --cluster create failed')
  for (const port of ports) await until(async () => (await clusterInfo(port)).includes('cluster_state:ok'), 'cluster_state:ok')
}

/** `CLUSTER INFO` (the INFO command's cluster section has no `cluster_state`). */
async function clusterInfo (port: number): Promise<string> {
  return await ask(port, async (client) => await client.cluster('INFO') as string)
}

/** Commands each master has processed so far. */
async function processed (ports: readonly number[]): Promise<number[]> {
  return await Promise.all(ports.map(async (port) => Number(/total_commands_processed:(\d+)/.exec(await info(port, 'stats'))?.[1])))
}

/** Every user signs in once and out once, `CONCURRENCY` at a time, through a store with `statsShards`. */
async function load (ports: readonly number[], statsShards: number, users: readonly string[]): Promise<number[]> {
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

const CLUSTER_ARGS = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes-{port}.conf']

async function main (): Promise<void> {
  requireBuild()
  await withRedisServers(MASTERS, CLUSTER_ARGS, async ({ ports }) => {
    await createCluster(ports)
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
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
