import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { installed, npmInstall, pack, run, tempDir } from './package-helper.js'
import { deleteKeys, REDIS_URL, redisTest, testClient, uniquePrefix } from './stores/redis-helper.js'

/**
 * `ioredis` is an optional peer dependency: an app that passes a client of its
 * own, here iovalkey, installs the packed tarball without ioredis and keeps its
 * sessions in Redis; asking the store to make a client (`connection`) is then a
 * coded option error that says what to install, when the store is made.
 */

// An install and a run, on a busy machine.
t.setTimeout(240_000)

const admin = testClient()
t.teardown(() => admin.disconnect())

const APP = `import Fastify from 'fastify'
import sessionGuard from 'fastify-session-guard'
import { redisStore } from 'fastify-session-guard/redis'
import { Redis } from 'iovalkey'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = process.env.PREFIX ?? ''
let ioredisInstalled = true
try { import.meta.resolve('ioredis') } catch { ioredisInstalled = false }
let refused
try { redisStore({ connection: url, prefix }) } catch (err) { refused = { code: err.code, message: err.message } }

const store = redisStore({ client: new Redis(url, { enableAutoPipelining: true }), closeClient: true, prefix })
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
const authorization = 'Bearer ' + login.json().accessToken
const cookie = login.cookies.map(({ name, value }) => name + '=' + value).join('; ')
const me = await app.inject({ url: '/me', headers: { authorization, cookie } })
await app.inject({ method: 'POST', url: '/logout', headers: { authorization, cookie } })
const loggedOut = await app.inject({ url: '/me', headers: { authorization, cookie } })
await app.close()
console.log(JSON.stringify({ ioredisInstalled, refused, me: me.statusCode, loggedOut: loggedOut.statusCode }))
`

redisTest(t, 'an app on iovalkey, without ioredis, installs the package and keeps its sessions in Redis', async (t) => {
  const tarball = await pack(t)
  const dir = await tempDir(t, 'sg-iovalkey')
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    private: true,
    type: 'module',
    dependencies: { 'fastify-session-guard': `file:${tarball}`, fastify: await installed('fastify'), iovalkey: await installed('iovalkey') }
  }))
  await writeFile(join(dir, 'app.js'), APP)
  const install = await npmInstall(dir)
  t.equal(install.code, 0, `npm install with iovalkey: ${install.stderr}`)
  const prefix = uniquePrefix()
  t.teardown(async () => await deleteKeys(admin, prefix))
  const ran = await run(process.execPath, [join(dir, 'app.js')], { cwd: dir, env: { ...process.env, REDIS_URL, PREFIX: prefix } })
  t.equal(ran.code, 0, `node app.js\n${ran.stderr}`)
  t.strictSame(JSON.parse(ran.stdout), {
    ioredisInstalled: false,
    refused: {
      code: 'FST_SESSION_GUARD_INVALID_OPTION',
      message: 'Invalid option "redisStore.connection": needs the ioredis package, an optional peer dependency of fastify-session-guard: npm i ioredis (or pass a client of your own as "client")'
    },
    me: 200,
    loggedOut: 401
  }, 'no ioredis: a client the store would make is refused with what to install; the app\'s own iovalkey client keeps the session, and its end')
})
