import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { pack, ROOT, run, tempDir } from './package-helper.js'

/**
 * Apps as users write them, on the packed tarball: installed by npm in its
 * isolated layout (as under pnpm, only an app's own dependencies sit at the top
 * of its node_modules), compiled by tsc, run by node. One ES module under
 * `module: nodenext`, one CommonJS module under `module: node16`, one under
 * `moduleResolution: bundler`. Each compiles the README's quick start and its
 * TypeScript recipe as they are printed, checks the decorators' types, and runs
 * an app that answers a guarded request and makes a Redis store from
 * `fastify-session-guard/redis`.
 */

// Install, three compilations and three apps, on a busy machine; well under a minute on an idle one.
t.setTimeout(240_000)

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

/** The first `ts` code block under the README heading `## <heading>`. */
function readmeBlock (readme: string, heading: string): string {
  const section = readme.split(/^## /m).find((part) => part.startsWith(`${heading}\n`))
  const block = section?.match(/^```ts\n([\s\S]*?)^```$/m)?.[1]
  if (block === undefined) throw new Error(`README.md has no ts block under "## ${heading}"`)
  return block
}

/** The version of a package this repository has installed, so the apps install what npm has cached. */
async function installed (name: string): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

interface Consumer {
  /** Its directory, and what `tsc` is told. */
  name: string
  type: 'module' | 'commonjs'
  compilerOptions: Record<string, unknown>
  /** The quick start as this kind of module can hold it. */
  quickStart: (block: string) => string
  /** How the app imports the plugin and its named exports. */
  imports: string
  /** The app's body runs inside an async function: CommonJS has no top-level await. */
  main: (body: string) => string
}

const esmMain = (body: string): string => body
const CONSUMERS: Consumer[] = [
  {
    name: 'esm-nodenext',
    type: 'module',
    compilerOptions: { module: 'nodenext', verbatimModuleSyntax: true },
    quickStart: (block) => block,
    imports: `import sessionGuard, { fastifySessionGuard, memoryStore, sessionGuard as named, type SessionGuardOptions, type SessionStore } from 'fastify-session-guard'
import * as namespace from 'fastify-session-guard'
import { redisStore, RedisStore } from 'fastify-session-guard/redis'`,
    main: esmMain
  },
  {
    name: 'cjs-node16',
    type: 'commonjs',
    compilerOptions: { module: 'node16', esModuleInterop: true },
    // The same lines, with the awaits inside a function.
    quickStart: (block) => {
      const lines = block.split('\n')
      const imports = lines.filter((line) => line.startsWith('import '))
      const body = lines.filter((line) => !line.startsWith('import '))
      return `${imports.join('\n')}\n\nexport async function quickStart (): Promise<void> {\n${body.join('\n')}\n}\n`
    },
    imports: `import sessionGuard = require('fastify-session-guard')
import type { SessionGuardOptions, SessionStore } from 'fastify-session-guard'
import redis = require('fastify-session-guard/redis')
const { fastifySessionGuard, memoryStore, sessionGuard: named } = sessionGuard
const { redisStore, RedisStore } = redis
const namespace = sessionGuard`,
    main: (body) => `async function main (): Promise<void> {\n${body}\n}\nmain().catch((err: unknown) => { console.error(err); process.exitCode = 1 })\n`
  },
  {
    name: 'bundler',
    type: 'module',
    compilerOptions: { module: 'esnext', moduleResolution: 'bundler' },
    quickStart: (block) => block,
    imports: `import sessionGuard, { fastifySessionGuard, memoryStore, sessionGuard as named, type SessionGuardOptions, type SessionStore } from 'fastify-session-guard'
import * as namespace from 'fastify-session-guard'
import { redisStore, RedisStore } from 'fastify-session-guard/redis'`,
    main: esmMain
  }
]

/** The decorators' and `request.user`'s types, after the README's recipe. */
const TYPE_CHECKS = `
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Guard, IssuedSession, SessionManager, SessionRecord } from 'fastify-session-guard'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
declare const app: FastifyInstance
declare const request: FastifyRequest
declare const reply: FastifyReply
export const checks: [
  Equal<typeof request.user, AccessClaims & { role: 'admin' | 'member' }>,
  Equal<typeof request.user.sub, string>,
  Equal<typeof app.requireSession, Guard>,
  Equal<typeof app.sessions, SessionManager>,
  Equal<typeof request.authSession, SessionRecord | null>,
  Equal<ReturnType<typeof reply.issueSession>, Promise<IssuedSession>>,
  Equal<ReturnType<typeof reply.refreshSession>, Promise<IssuedSession>>,
  Equal<ReturnType<typeof request.endSession>, Promise<void>>,
  Equal<ReturnType<typeof request.regenerateSession>, Promise<IssuedSession>>
] = [true, true, true, true, true, true, true, true, true]
`

/** Logs in, then asks a guarded route with and without the fingerprint cookie; prints what it saw. */
const APP_BODY = `
  const options: SessionGuardOptions = { secret: 'a-consumer-secret-that-is-long-enough-0123', store: memoryStore() }
  const app = Fastify()
  await app.register(sessionGuard, options)
  app.post('/login', async (request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: 'alice', claims: { role: 'admin' } })
    return { accessToken }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ sub: request.user.sub, role: request.user.role }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const authorization = 'Bearer ' + (login.json() as { accessToken: string }).accessToken
  const cookie = login.cookies.map(({ name, value }) => name + '=' + value).join('; ')
  const me = await app.inject({ url: '/me', headers: { authorization, cookie } })
  const withoutCookie = await app.inject({ url: '/me', headers: { authorization } })
  await app.close()
  // The Redis store, from its own entry: made without connecting.
  const redisBacked: SessionStore = redisStore({ connection: 'redis://127.0.0.1:6379' })
  console.log(JSON.stringify({
    samePlugin: [named, fastifySessionGuard, namespace.default, namespace.sessionGuard].every((value) => value === sessionGuard),
    redisStore: redisBacked instanceof RedisStore && !('redisStore' in sessionGuard),
    me: { status: me.statusCode, body: me.json() },
    withoutCookie: withoutCookie.statusCode
  }))
`

async function writeConsumer (dir: string, consumer: Consumer, readme: string): Promise<void> {
  await mkdir(dir)
  const fastifyImport = consumer.type === 'module' ? "import Fastify from 'fastify'" : "import Fastify = require('fastify')"
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ private: true, type: consumer.type }),
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        strict: true,
        skipLibCheck: true,
        outDir: 'dist',
        rootDir: '.',
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
        ...consumer.compilerOptions
      }
    }),
    // The app's own code that the quick start calls.
    'globals.d.ts': "declare function checkPassword (body: unknown): Promise<{ id: string, role: 'admin' | 'member' }>\n",
    'quick-start.ts': consumer.quickStart(readmeBlock(readme, 'Quick start')),
    'user.ts': readmeBlock(readme, 'TypeScript') + TYPE_CHECKS,
    'app.ts': `${fastifyImport}\n${consumer.imports}\n${consumer.main(APP_BODY)}`
  }
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
}

t.test('apps on the packed tarball compile the README verbatim and answer a guarded request', async (t) => {
  const tarball = await pack(t)
  const root = await tempDir(t, 'sg-consumers')
  await writeFile(join(root, 'package.json'), JSON.stringify({
    private: true,
    // ioredis: an optional peer dependency, which an app on the Redis store installs.
    dependencies: { 'fastify-session-guard': `file:${tarball}`, fastify: await installed('fastify'), ioredis: await installed('ioredis') }
  }))
  const install = await run('npm', [
    'install', '--install-strategy=linked', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'
  ], { cwd: root, timeoutMs: 120_000 })
  t.equal(install.code, 0, `npm install: ${install.stderr}`)

  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  await Promise.all(CONSUMERS.map(async (consumer) => {
    const dir = join(root, consumer.name)
    await writeConsumer(dir, consumer, readme)
    const compiled = await run(process.execPath, [TSC, '-p', dir], { timeoutMs: 120_000 })
    t.equal(compiled.code, 0, `${consumer.name}: tsc\n${compiled.stdout}${compiled.stderr}`)
    const ran = await run(process.execPath, [join(dir, 'dist', 'app.js')], { cwd: dir })
    t.equal(ran.code, 0, `${consumer.name}: node dist/app.js\n${ran.stderr}`)
    t.strictSame(JSON.parse(ran.stdout), {
      samePlugin: true,
      redisStore: true,
      me: { status: 200, body: { sub: 'alice', role: 'admin' } },
      withoutCookie: 401
    }, `${consumer.name}: the plugin under every name, and a guarded route that needs the cookie`)
  }))
})
