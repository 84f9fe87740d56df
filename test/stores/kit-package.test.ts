import { execFile } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'

/**
 * The store kit as a store author gets it: the built package, reached through
 * the names in package.json "exports", in a process of its own. These measure
 * the build, so `npm test` builds first.
 */

const ROOT = join(__dirname, '..', '..')
// A conformance run and a model run in a child: longer than tap's default when the machine is busy.
t.setTimeout(120_000)

interface Run { code: number | null, stdout: string, stderr: string }

function node (args: string[]): Promise<Run> {
  // No coverage from the children (they load dist/), and none of this run's tap settings.
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TAP'))),
    _TAPJS_PROCESSINFO_COVERAGE_: '0'
  }
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: ROOT, env, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

t.test('a store author\'s test file runs the kit from fastify-session-guard/testing', async (t) => {
  const { code, stdout, stderr } = await node([join(ROOT, 'test', 'stores', 'fixtures', 'store-author.mjs')])
  t.equal(code, 0, stderr)
  t.match(stdout, /^ok \d+ - my store keeps the store contract/m)
  t.match(stdout, /^ok \d+ - my store agrees with the reference model/m)
})

t.test('the main entry loads neither the kit nor tap nor fast-check', async (t) => {
  const { code, stdout, stderr } = await node(['-e', 'require("fastify-session-guard"); console.log(JSON.stringify(Object.keys(require.cache)))'])
  t.equal(code, 0, stderr)
  const loaded = JSON.parse(stdout) as string[]
  t.ok(loaded.includes(join(ROOT, 'dist', 'index.js')), 'require.cache holds the built main entry')
  t.strictSame(loaded.filter((file) => file.startsWith(join(ROOT, 'dist', 'testing'))), [], 'nothing from dist/testing')
  t.strictSame(loaded.filter((file) => /node_modules[\\/](tap|@tapjs|fast-check)[\\/]/.test(file)), [], 'neither tap nor fast-check')
})
