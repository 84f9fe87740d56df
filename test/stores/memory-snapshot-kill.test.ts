import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { memoryStore } from '../../lib/index.js'
import { decodeSnapshot } from '../../lib/stores/memory-snapshot.js'
import { waitFor } from './redis-helper.js'

const INTERVAL_MS = 200
const ROOT = join(__dirname, '..', '..')

/** When the snapshot at `path` was taken, or undefined while there is none. */
async function writtenAt (path: string): Promise<number | undefined> {
  try {
    return decodeSnapshot(await readFile(path), path).writtenAt
  } catch {
    return undefined
  }
}

t.test('SIGKILL between two snapshots loses only what was created since the last one', async (t) => {
  const path = join(t.testdir(), 'sessions.snapshot')
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures', 'snapshot-writer.ts'), path, String(INTERVAL_MS)], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => { output += chunk })

  // Two snapshots by the child's timer, then the kill at a random moment of the next interval.
  const seen = new Set<number>()
  await waitFor(async () => {
    const at = await writtenAt(path)
    if (at !== undefined) seen.add(at)
    return seen.size >= 2
  }, 60_000, 'two snapshots by the child')
  await new Promise((resolve) => setTimeout(resolve, Math.random() * INTERVAL_MS))
  const killedAt = Date.now()
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.equal(child.signalCode, 'SIGKILL', 'killed, not exited')

  const acked = output.split('\n').filter((line) => line !== '').map((line) => {
    const [n, at] = line.split(' ').map(Number) as [number, number]
    return { id: `s${n}`, n, at }
  })
  const last = await writtenAt(path) as number
  const store = memoryStore({ snapshot: { path } })
  t.teardown(() => store.close())
  await store.open({ now: Date.now, onRemoved: () => {} })
  const restored = new Set<string>()
  for await (const batch of store.scan(1000, Date.now())) for (const session of batch) restored.add(session.id)

  const before = acked.filter((session) => session.at < last)
  t.ok(before.length > 0, `${before.length} sessions were created before the last snapshot`)
  t.strictSame(before.filter((session) => !restored.has(session.id)).map((session) => session.id), [], 'every one of them is back')
  const count = restored.size
  t.ok([...restored].every((id) => Number(id.slice(1)) < count), 'what came back is exactly the first sessions created, in order: one moment of the store')
  const created = await store.counter('created', Date.now())
  t.ok(created !== undefined && Math.abs(created.count - count) <= 1, `the counter came back with them (${String(created?.count)} for ${count} sessions)`)
  const lost = acked.filter((session) => !restored.has(session.id))
  t.ok(lost.every((session) => session.at >= last), 'only sessions created after the last snapshot are lost')
  const elapsed = acked.length > 1 ? (acked.at(-1) as { at: number }).at - (acked[0] as { at: number }).at : 0
  t.comment(`interval ${INTERVAL_MS} ms; ${acked.length} sessions acknowledged in ${elapsed} ms (${Math.round(acked.length / Math.max(1, elapsed) * 1000)}/s); ` +
    `restored ${count}; lost ${lost.length} (${(lost.length / acked.length * 100).toFixed(1)} %), created in the ${killedAt - last} ms between the last snapshot and the kill`)
})
