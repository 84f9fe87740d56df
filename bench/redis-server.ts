import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

/**
 * Private redis-servers for the benchmarks that need their own (a Cluster,
 * an empty server to weigh): on free ports of 127.0.0.1, without persistence,
 * in a temporary directory, and stopped by pid whatever happens.
 */

/** Test-style clients: a missing server fails a command instead of retrying forever. */
export const CLIENT = { maxRetriesPerRequest: 1, commandTimeout: 5000, retryStrategy: () => null }

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

export interface PrivateServers {
  readonly ports: readonly number[]
  /** The servers' directory (for their config files). */
  readonly dir: string
}

/**
 * Runs `body` with `count` private redis-servers started with `args` each
 * (`{port}` in an argument becomes the server's port), then stops them.
 */
export async function withRedisServers<T> (count: number, args: readonly string[], body: (servers: PrivateServers) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-redis-'))
  const servers: ChildProcess[] = []
  // Stopped with Ctrl-C or a kill, the benchmark stops its servers first.
  const interrupted = (signal: NodeJS.Signals): void => {
    for (const server of servers) server.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
    process.kill(process.pid, signal)
  }
  process.once('SIGINT', interrupted)
  process.once('SIGTERM', interrupted)
  try {
    const ports: number[] = []
    while (ports.length < count) {
      const port = await freePort()
      if (!ports.includes(port)) ports.push(port)
    }
    for (const port of ports) {
      servers.push(spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        ...args.map((arg) => arg.replace('{port}', String(port)))
      ], { stdio: 'ignore' }))
    }
    for (const port of ports) await until(async () => await ping(port), 'redis-server to start')
    return await body({ ports, dir })
  } finally {
    process.off('SIGINT', interrupted)
    process.off('SIGTERM', interrupted)
    for (const server of servers) server.kill('SIGTERM')
    await Promise.all(servers.map(async (server) => server.exitCode === null ? await once(server, 'exit') : undefined))
    rmSync(dir, { recursive: true, force: true })
  }
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

/** Runs `command` on a client of the server at `port`, then disconnects it. */
export async function ask<T> (port: number, command: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(port, '127.0.0.1', CLIENT)
  client.on('error', () => {})
  try {
    return await command(client)
  } finally {
    client.disconnect()
  }
}

export async function info (port: number, section: string): Promise<string> {
  return await ask(port, async (client) => await client.info(section))
}

export async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 15_000
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
