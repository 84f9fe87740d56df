import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { installed, npmInstall, pack, ROOT, run, tempDir } from './package-helper.js'
import { deleteKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * `ioredis` is an optional peer dependency whose range takes ioredis 5 as well
 * as 6: an app that already has ioredis 5 installs the packed tarball (npm
 * refuses an install whose optional peer is present at a version out of range),
 * compiles against ioredis 5's types, and keeps sessions in Redis through a
 * client the store creates with that ioredis, and through one the app passes in.
 */

// An install, a compilation and a run, on a busy machine.
t.setTimeout(240_000)

const admin = testClient()
t.teardown(() => admin.disconnect())

const APP = `import Fastify from 'fastify'
import { createRequire } from 'node:module'
import sessionGuard from 'fastify-session-guard'
import { redisStore } from 'fastify-session-guard/redis'
import { Redis } from 'ioredis'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = process.env.PREFIX ?? ''
// The ioredis the store itself loads, resolved from where the package sits.
const storeRequire = createRequire(import.meta.resolve('fastify-session-guard/redis'))
const seen: Array<{ me: number, withoutCookie: number, loggedOut: number }> = []
for (const store of [
  redisStore({ connection: url, prefix }),
  redisStore({ client: new Redis(url, { enableAutoPipelining: true }), closeClient: true, prefix })
]) {
  const app = Fastify()
  await app.register(sessionGuard, { secret: 'a-consumer-secret-that-is-long-enough-0123', store })
  app.post('/login', async (request, reply) => {
    const { accessToken } = await reply.issueSession({ userId: 'alice' })
    return { accessToken }
  })
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return { ok: true }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ userId: request.authSession?.userId }))
  const login = await app.inject({ method: 'POST', url: '/login' })
  const authorization = 'Bearer ' + (login.json() as { accessToken: string }).accessToken
  const cookie = login.cookies.map(({ name, value }) => name + '=' + value).join('; ')
  const me = await app.inject({ url: '/me', headers: { authorization, cookie } })
  const withoutCookie = await app.inject({ url: '/me', headers: { authorization } })
  await app.inject({ method: 'POST', url: '/logout', headers: { authorization, cookie } })
  const loggedOut = await app.inject({ url: '/me', headers: { authorization, cookie } })
  await app.close()
  seen.push({ me: me.statusCode, withoutCookie: withoutCookie.statusCode, loggedOut: loggedOut.statusCode })
}
console.log(JSON.stringify({ ioredis: (storeRequire('ioredis/package.json') as { version: string }).version, seen }))
`

redisTest(t, 'an app on ioredis 5 installs the package, compiles, and keeps its sessions in Redis', async (t) => {
  const ioredis5 = await installed('ioredis5')
  const tarball = await pack(t)
  const dir = await tempDir(t, 'sg-ioredis5')
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    private: true,
    type: 'module',
    dependencies: { 'fastify-session-guard': `file:${tarball}`, fastify: await installed('fastify'), ioredis: ioredis5 }
  }))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      target: 'es2022',
      strict: true,
      skipLibCheck: true,
      outDir: 'dist',
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules', '@types')]
    },
    files: ['app.ts']
  }))
  await writeFile(join(dir, 'app.ts'), APP)
  const install = await npmInstall(dir)
  t.equal(install.code, 0, `npm install beside ioredis ${ioredis5}: ${install.stderr}`)
  const compiled = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { timeoutMs: 120_000 })
  t.equal(compiled.code, 0, `tsc against ioredis ${ioredis5}'s types\n${compiled.stdout}${compiled.stderr}`)
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const ran = await run(process.execPath, [join(dir, 'dist', 'app.js')], { cwd: dir, env: { ...process.env, REDIS_URL, PREFIX: prefix } })
  t.equal(ran.code, 0, `node dist/app.js\n${ran.stderr}`)
  t.strictSame(JSON.parse(ran.stdout), {
    ioredis: ioredis5,
    seen: [
      { me: 200, withoutCookie: 401, loggedOut: 401 },
      { me: 200, withoutCookie: 401, loggedOut: 401 }
    ]
  }, 'the store loads the app\'s ioredis 5, on a client it made and on the app\'s: a session lives, needs its cookie, and ends')
})
