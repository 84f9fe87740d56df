import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fixed, ROOT, table } from './common.js'

/**
 * The top of a `.cpuprofile` (from `npm run bench -- --only guard-memory --cpu-prof <dir>`):
 * self time per function, and time inside each of the plugin's own functions
 * including what they call.
 *
 *   node --import tsx bench/profile.ts <file.cpuprofile> [top=25]
 */

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface Profile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[] }

const [file, topArg] = process.argv.slice(2)
if (file === undefined) {
  console.error('usage: node --import tsx bench/profile.ts <file.cpuprofile> [top]')
  process.exit(1)
}
const top = Number(topArg ?? 25)
const DIST = `${ROOT}/dist/`
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const totalSamples = profile.samples.length
const byId = new Map(profile.nodes.map((node) => [node.id, node]))

function label (node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const where = url === '' ? '' : ` ${url.startsWith('file://') ? relative(ROOT, new URL(url).pathname) : url}:${lineNumber + 1}`
  return `${functionName === '' ? '(anonymous)' : functionName}${where}`
}

// Self time: samples whose top frame is the function.
const self = new Map<string, number>()
for (const node of profile.nodes) {
  if ((node.hitCount ?? 0) === 0) continue
  const key = label(node)
  self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0))
}

// Inclusive time of the plugin's own functions (dist/), counted once per sample even when recursive.
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const inclusive = new Map<string, number>()
for (const node of profile.nodes) {
  const hits = node.hitCount ?? 0
  if (hits === 0) continue
  const seen = new Set<string>()
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const frame = byId.get(id) as ProfileNode
    if (!frame.callFrame.url.includes(DIST)) continue
    const key = label(frame)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + hits)
  }
}

const share = (samples: number): string => `${fixed(samples / totalSamples * 100, 1)} %`
const sorted = (map: Map<string, number>): Array<[string, number]> => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
console.log(`${totalSamples} samples over ${fixed((profile.endTime - profile.startTime) / 1e6, 1)} s\n`)
console.log('Self time\n')
console.log(table(['function', 'self'], sorted(self).map(([name, samples]) => [name, share(samples)])))
console.log('\nThe plugin\'s functions (dist/), including what they call\n')
console.log(table(['function', 'total'], sorted(inclusive).map(([name, samples]) => [name, share(samples)])))
