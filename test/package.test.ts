import { readdir, readFile } from 'node:fs/promises'
import { join, posix, relative, sep } from 'node:path'
import t from 'tap'
import { pack, ROOT, run } from './package-helper.js'

/**
 * The package as npm publishes it: its CommonJS shape, and its declarations
 * as every kind of TypeScript project resolves them.
 */

// npm pack and the type analysis of every entry point, on a busy machine.
t.setTimeout(120_000)

const ATTW = join(ROOT, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')

t.test('module.exports is the plugin, with .default, a named export, and every value Node names for an ES module', async (t) => {
  const script = `
    const cjs = require('fastify-session-guard')
    import('fastify-session-guard').then((esm) => {
      const names = Object.keys(esm).filter((name) => name !== 'module.exports')
      console.log(JSON.stringify({
        type: typeof cjs,
        meta: cjs[Symbol.for('plugin-meta')],
        default: cjs.default === cjs,
        sessionGuard: cjs.sessionGuard === cjs,
        esmDefault: esm.default === cjs,
        cjsNames: Object.keys(cjs).sort(),
        esmNames: names.sort(),
        differentValues: names.filter((name) => name !== 'default' && esm[name] !== cjs[name])
      }))
    })`
  const { code, stdout, stderr } = await run(process.execPath, ['-e', script])
  t.equal(code, 0, stderr)
  const shape = JSON.parse(stdout)
  t.equal(shape.type, 'function', 'require() gives the plugin itself')
  t.match(shape.meta, { name: 'fastify-session-guard', fastify: '5.x' }, 'wrapped with fastify-plugin')
  t.ok(shape.default, 'require(…).default is the plugin')
  t.ok(shape.sessionGuard, 'require(…).sessionGuard is the plugin')
  t.ok(shape.esmDefault, 'import sessionGuard from … is the plugin')
  t.ok(shape.cjsNames.includes('memoryStore') && shape.cjsNames.includes('UnauthorizedError'), 'the other values hang on the plugin')
  t.strictSame(shape.esmNames, shape.cjsNames, 'an ES module can import by name every value require() gives')
  t.strictSame(shape.differentValues, [])
})

t.test('the main entry loads no Redis client; fastify-session-guard/redis holds the Redis store', async (t) => {
  // The command from the issue, as it is written there.
  const main = await run(process.execPath, ['-e', "require('fastify-session-guard'); console.log(Object.keys(require.cache).some(k => k.includes('ioredis')))"])
  t.equal(main.code, 0, main.stderr)
  t.equal(main.stdout, 'false\n', 'require.cache holds nothing of ioredis')
  const redis = await run(process.execPath, ['-e', `
    const sessionGuard = require('fastify-session-guard')
    const redis = require('fastify-session-guard/redis')
    console.log(JSON.stringify({
      main: ['redisStore', 'RedisStore'].filter((name) => name in sessionGuard),
      redis: [typeof redis.redisStore, typeof redis.RedisStore],
      loaded: Object.keys(require.cache).some((k) => k.includes('ioredis'))
    }))`])
  t.equal(redis.code, 0, redis.stderr)
  t.strictSame(JSON.parse(redis.stdout), { main: [], redis: ['function', 'function'], loaded: true })

  const manifest = await readManifest()
  t.notOk(manifest.dependencies.ioredis, 'ioredis is not installed with the package')
  t.ok(manifest.peerDependencies.ioredis, 'ioredis is a peer dependency')
  t.strictSame(manifest.peerDependenciesMeta.ioredis, { optional: true }, '… an optional one')
  t.ok(manifest.devDependencies.ioredis, 'the project installs it for its own tests')
})

t.test('the main entry loads no MMDB reader; fastify-session-guard/geo holds the geolocation helper', async (t) => {
  const geo = await run(process.execPath, ['-e', `
    const sessionGuard = require('fastify-session-guard')
    const before = Object.keys(require.cache).some((k) => k.includes('mmdb-lib'))
    const geo = require('fastify-session-guard/geo')
    console.log(JSON.stringify({
      before,
      main: 'mmdbLocation' in sessionGuard,
      geo: typeof geo.mmdbLocation,
      after: Object.keys(require.cache).some((k) => k.includes('mmdb-lib'))
    }))`])
  t.equal(geo.code, 0, geo.stderr)
  t.strictSame(JSON.parse(geo.stdout), { before: false, main: false, geo: 'function', after: true })
  const manifest = await readManifest()
  t.notOk(manifest.dependencies['mmdb-lib'], 'mmdb-lib is not installed with the package')
  t.strictSame(manifest.peerDependenciesMeta['mmdb-lib'], { optional: true }, 'an optional peer dependency')
})

t.test('the main entry loads no PostgreSQL client; fastify-session-guard/postgres holds the PostgreSQL store', async (t) => {
  const pg = `${sep}node_modules${sep}pg${sep}`
  const main = await run(process.execPath, ['-e', `require('fastify-session-guard'); console.log(Object.keys(require.cache).some(k => k.includes(${JSON.stringify(pg)})))`])
  t.equal(main.code, 0, main.stderr)
  t.equal(main.stdout, 'false\n', 'require.cache holds nothing of pg')
  const postgres = await run(process.execPath, ['-e', `
    const sessionGuard = require('fastify-session-guard')
    const postgres = require('fastify-session-guard/postgres')
    console.log(JSON.stringify({
      main: ['postgresStore', 'PostgresStore', 'migrate'].filter((name) => name in sessionGuard),
      postgres: [typeof postgres.postgresStore, typeof postgres.PostgresStore, typeof postgres.migrate],
      migrations: postgres.migrations().map((migration) => migration.name),
      loaded: Object.keys(require.cache).some((k) => k.includes(${JSON.stringify(pg)}))
    }))`])
  t.equal(postgres.code, 0, postgres.stderr)
  t.strictSame(JSON.parse(postgres.stdout), {
    main: [],
    postgres: ['function', 'function', 'function'],
    migrations: (await readdir(join(ROOT, 'sql', 'postgres'))).sort(),
    loaded: true
  }, 'the store, and the SQL files it reads, found from the built package')

  const manifest = await readManifest()
  t.notOk(manifest.dependencies.pg, 'pg is not installed with the package')
  t.ok(manifest.peerDependencies.pg, 'pg is a peer dependency')
  t.strictSame(manifest.peerDependenciesMeta.pg, { optional: true }, '… an optional one')
  t.ok(manifest.devDependencies.pg, 'the project installs it for its own tests')
})

t.test('package.json names the repository, its issues and its home page', async (t) => {
  const manifest = await readManifest()
  t.strictSame(manifest.repository, { type: 'git', url: 'git+https://github.com/fastify-session-guard/fastify-session-guard.git' })
  t.equal(manifest.homepage, 'https://github.com/fastify-session-guard/fastify-session-guard#readme')
  t.strictSame(manifest.bugs, { url: 'https://github.com/fastify-session-guard/fastify-session-guard/issues' })
})

t.test('the build runs when the package is packed, and nothing runs when it is installed', async (t) => {
  const { scripts } = await readManifest()
  t.match(scripts.prepack, /\bnpm run build\b/)
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) t.notOk(scripts[hook], `no ${hook} script`)
})

t.test('the tarball holds exactly dist/ as lib/ builds it, docs/*.md, sql/, README.md, LICENSE, CHANGELOG.md and package.json', async (t) => {
  const built = (await filesUnder('lib')).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')).flatMap((file) => {
    const out = file.replace(/^lib\//, 'dist/').replace(/\.ts$/, '')
    return [`${out}.js`, `${out}.d.ts`]
  })
  // The screenshots stay in the repository (the docs show them from there): 432 KB nobody's server needs.
  const docs = (await filesUnder('docs')).filter((file) => file.endsWith('.md'))
  const expected = [...built, ...docs, ...await filesUnder('sql'), 'README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']
  t.strictSame(await packed(), expected.sort(), 'no tests, maps, build info, screenshots or stale build output')
  t.ok((await filesUnder('docs/img')).length > 0 && !(await packed()).some((file) => file.startsWith('docs/img/')), 'docs/img is left out')
})

t.test('every relative link in README.md and the docs leads to a file in the tarball', async (t) => {
  const shipped = new Set(await packed())
  for (const file of ['README.md', ...await filesUnder('docs')].filter((file) => file.endsWith('.md'))) {
    const text = await readFile(join(ROOT, file), 'utf8')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (target === undefined || /^(https?:|mailto:|#)/.test(target)) continue
      const path = posix.normalize(posix.join(posix.dirname(file), target.replace(/#.*$/, '')))
      t.ok(shipped.has(path), `${file}: ${target}`)
    }
  }
})

t.test('@arethetypeswrong/cli finds no problem in any entry point, under any resolution', async (t) => {
  const tarball = await pack(t)
  const { stdout, stderr } = await run(process.execPath, [ATTW, tarball, '--format', 'json', '--no-definitely-typed'])
  const { analysis } = JSON.parse(stdout) as { analysis: Analysis }
  t.strictSame(analysis.problems, [], stderr)
  // Every subpath of package.json "exports" (a subpath needs its typesVersions line for node10).
  const { exports } = await readManifest()
  t.strictSame(Object.keys(analysis.entrypoints).sort(), Object.keys(exports).sort())
  t.ok(['.', './redis', './postgres', './testing', './geo'].every((subpath) => subpath in exports), 'the main entry, the Redis and PostgreSQL stores, the store kit and the geolocation helper')
  for (const [subpath, { resolutions }] of Object.entries(analysis.entrypoints)) {
    t.strictSame(Object.keys(resolutions).sort(), ['bundler', 'node10', 'node16-cjs', 'node16-esm'], `${subpath}: every resolution checked`)
    for (const [kind, { resolution }] of Object.entries(resolutions)) {
      t.ok(resolution?.fileName, `${subpath} resolves under ${kind}`)
    }
  }
})

interface Analysis {
  problems: unknown[]
  entrypoints: Record<string, { resolutions: Record<string, { resolution?: { fileName: string } }> }>
}

let packing: Promise<string[]> | undefined
/** The paths `npm pack` puts in the tarball, sorted. */
async function packed (): Promise<string[]> {
  packing ??= run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']).then(({ code, stdout, stderr }) => {
    if (code !== 0) throw new Error(`npm pack --dry-run: ${stderr}`)
    const [{ files }] = JSON.parse(stdout) as [{ files: Array<{ path: string }> }]
    return files.map(({ path }) => path).sort()
  })
  return await packing
}

async function readManifest (): Promise<Manifest> {
  return JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Manifest
}

/** Every file under `dir`, as a path from the project root with `/`. */
async function filesUnder (dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true })
  return entries.filter((entry) => entry.isFile()).map((entry) => posix.join(dir, relative(join(ROOT, dir), join(entry.parentPath, entry.name)).split(sep).join('/')))
}

interface Manifest {
  exports: Record<string, unknown>
  repository: unknown
  homepage: string
  bugs: unknown
  scripts: Record<string, string>
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}
