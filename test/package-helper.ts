import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

/**
 * For the tests of the package as users get it: `npm pack`, then commands
 * run on the tarball in child processes. These measure the build, so
 * `npm test` builds first.
 */

export const ROOT = join(__dirname, '..')

export interface Run { code: number | null, stdout: string, stderr: string }

/**
 * Runs `file` with `args` and resolves however it ends. The children get no
 * coverage (they load dist/) and none of this run's tap settings.
 */
export function run (file: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<Run> {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TAP'))),
    _TAPJS_PROCESSINFO_COVERAGE_: '0',
    ...options.env
  }
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd ?? ROOT, env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** A temporary directory, removed when `t` ends. */
export async function tempDir (t: Test, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `${name}-`))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

/**
 * The tarball `npm publish` would upload, packed from the current build into a
 * temporary directory. `--ignore-scripts`: `npm test` has just built, and
 * prepack would build again.
 */
export async function pack (t: Test): Promise<string> {
  const dir = await tempDir(t, 'sg-pack')
  const packed = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir])
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr}`)
  const [tarball] = (await readdir(dir)).filter((file) => file.endsWith('.tgz'))
  if (tarball === undefined) throw new Error(`npm pack wrote no tarball: ${packed.stdout}`)
  return join(dir, tarball)
}

/** `npm install` in an app a test made: from npm's cache where it can, without install scripts, quietly. */
export async function npmInstall (dir: string): Promise<Run> {
  return await run('npm', [
    'install', '--install-strategy=linked', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'
  ], { cwd: dir, timeoutMs: 120_000 })
}

/** The version of a package this repository has installed, so an app made by a test installs what npm has cached. */
export async function installed (name: string): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}
