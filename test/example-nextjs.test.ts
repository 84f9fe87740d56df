import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import type { Readable } from 'node:stream'
import { join } from 'node:path'
import Fastify from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import sessionGuard from '../lib/index.js'

/**
 * The Next.js example (`examples/nextjs/`, its own package.json): built with
 * `next build`, started against a real API, and driven in Chromium with
 * JavaScript off, so the devices page can only have been rendered on the
 * server, through the API, for the signed-in user. Needs the example's
 * dependencies (`npm ci --prefix examples/nextjs`) and Chromium; without them
 * the test skips loudly, except on CI (or with REQUIRE_NEXTJS_EXAMPLE=1), where it fails.
 */
const EXAMPLE = join(__dirname, '..', 'examples', 'nextjs')
const NEXT = join(EXAMPLE, 'node_modules', 'next', 'dist', 'bin', 'next')
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const required = process.env.CI !== undefined || process.env.REQUIRE_NEXTJS_EXAMPLE === '1'
const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
const PASSWORD = 'demo-password'
/** The access token's lifetime in the test: the middleware refreshes when it is gone or less than 5 s from expiry. */
const TTL_SECONDS = 8
const PLUGIN_COOKIES = ['__Host-sg-at', '__Host-sg-fp', '__Secure-sg-rt']

const LAPTOP = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
const PHONE = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36'

const missing = [
  existsSync(NEXT) ? undefined : 'the example\'s dependencies (npm ci --prefix examples/nextjs)',
  existsSync(executablePath) ? undefined : `Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`
].filter((what) => what !== undefined)

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Runs `next <args>` in the example; resolves with its output, rejects with it on a non-zero exit. */
/**
 * The example's processes are not the library's: started through `env -u`, so tap's coverage and loaders
 * (NODE_V8_COVERAGE, NODE_OPTIONS, which tap adds to every process the test spawns) never reach them, and
 * the built Next.js app never lands in the library's coverage report.
 */
function spawnExample (args: string[], extra: Record<string, string>): ChildProcessByStdio<null, Readable, Readable> {
  return spawn('env', ['-u', 'NODE_V8_COVERAGE', '-u', 'NODE_OPTIONS', process.execPath, NEXT, ...args], {
    cwd: EXAMPLE,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...extra },
    stdio: ['ignore', 'pipe', 'pipe']
  })
}

async function next (args: string[], env: Record<string, string>): Promise<string> {
  const child = spawnExample(args, env)
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  return await new Promise((resolve, reject) => {
    child.on('close', (code) => code === 0 ? resolve(output) : reject(new Error(`next ${args.join(' ')} exited with ${String(code)}:\n${output}`)))
  })
}

async function waitForServer (url: string, output: () => string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      await fetch(url, { redirect: 'manual' })
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`next start did not answer at ${url}:\n${output()}`)
}

/** The example's files that docs/deployment.md shows, each as a block opening with `// examples/nextjs/<path>`. */
const SHOWN = ['lib/api.js', 'app/auth/login/route.js', 'middleware.js', 'app/devices/page.jsx', 'app/auth/revoke/route.js', 'app/auth/logout/route.js']

t.test("docs/deployment.md's Next.js recipe is the example's code, file for file", async (t) => {
  const text = await readFile(join(__dirname, '..', 'docs', 'deployment.md'), 'utf8')
  const start = text.indexOf('### Next.js (App Router)')
  const section = text.slice(start, text.indexOf('\n## ', start))
  const blocks = [...section.matchAll(/```jsx?\n\/\/ examples\/nextjs\/(\S+)\n([\s\S]*?)```/g)]
  t.same(blocks.map((block) => block[1]), SHOWN, 'the files, in this order')
  for (const [, path, code] of blocks) t.equal(code, await readFile(join(EXAMPLE, path as string), 'utf8'), `${path as string} as the example has it`)
})

if (missing.length > 0) {
  if (required) {
    t.fail(`the Next.js example test needs ${missing.join(' and ')}`)
  } else {
    console.error(`\n!!! SKIPPING the Next.js example test: missing ${missing.join(' and ')} !!!\n`)
    t.test('the example, built and driven in Chromium', { skip: `missing ${missing.join(' and ')}` }, () => {})
  }
} else {
  // `next build` alone takes minutes on a busy machine: more than the suite's per-file timeout.
  t.setTimeout(10 * 60_000)
  t.test('the devices page is rendered on the server through the API, for the signed-in user', async (t) => {
    const nextPort = await freePort()
    const nextOrigin = `http://127.0.0.1:${nextPort}`

    const api = Fastify()
    t.teardown(() => api.close())
    await api.register(sessionGuard, {
      secret: SECRET,
      // Short, so the test can wait for the browser to drop the access token cookie and see the middleware refresh.
      accessTokenTtl: `${TTL_SECONDS}s`,
      accessToken: { transport: 'both' },
      routes: { prefix: '/sessions' },
      // The middleware sees the refresh cookie on page paths; the forms come from the app's origin.
      refresh: { allowedOrigins: [nextOrigin], cookiePath: '/' }
    })
    const refreshes: number[] = []
    const unsafe: Array<{ method: string, url: string, status: number }> = []
    api.addHook('onResponse', async (request, reply) => {
      if (request.method === 'GET') return
      unsafe.push({ method: request.method, url: request.url, status: reply.statusCode })
      if (request.url === '/refresh') refreshes.push(reply.statusCode)
    })
    api.post<{ Body: { username?: string, password?: string } }>('/login', async (request, reply) => {
      const { username, password } = request.body
      if (typeof username !== 'string' || username === '' || password !== PASSWORD) return await reply.code(401).send({ error: 'wrong username or password' })
      const { session } = await reply.issueSession({ userId: username })
      return { sessionId: session.id }
    })
    api.post('/refresh', async (request, reply) => {
      await reply.refreshSession()
      return await reply.code(204).send()
    })
    api.post('/logout', { preHandler: api.requireSession }, async (request, reply) => {
      await request.endSession(reply)
      return await reply.code(204).send()
    })
    api.get('/me', { preHandler: api.requireSession }, async (request) => ({ userId: request.authSession!.userId }))
    await api.listen({ host: '127.0.0.1', port: 0 })
    const apiUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`

    await next(['build'], {})
    const server = spawnExample(['start', '-p', String(nextPort), '-H', '127.0.0.1'], { API_URL: apiUrl, APP_ORIGIN: nextOrigin })
    let output = ''
    server.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    server.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const exited = new Promise((resolve) => server.on('close', resolve))
    t.teardown(async () => {
      server.kill()
      await exited
    })
    await waitForServer(`${nextOrigin}/login`, () => output)

    const browser: Browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    })
    t.teardown(() => browser.close())

    /** A device with JavaScript off: whatever its pages show, the server rendered. */
    async function device (userAgent: string): Promise<Page> {
      const context = await browser.newContext({ userAgent, javaScriptEnabled: false })
      return await context.newPage()
    }

    const laptop = await device(LAPTOP)
    await laptop.goto(`${nextOrigin}/devices`)
    t.equal(new URL(laptop.url()).pathname, '/login', 'without a session, the page sends the browser to sign in')

    await laptop.getByLabel('Username').fill('alice')
    await laptop.getByLabel('Password').fill('wrong')
    await laptop.getByRole('button', { name: 'Sign in' }).click()
    await laptop.locator('#error').waitFor()
    t.equal(new URL(laptop.url()).pathname, '/login', 'a wrong password signs nobody in')

    await laptop.getByLabel('Username').fill('alice')
    await laptop.getByLabel('Password').fill(PASSWORD)
    await laptop.getByRole('button', { name: 'Sign in' }).click()
    await laptop.locator('#devices').waitFor()
    t.equal(new URL(laptop.url()).pathname, '/devices')
    t.equal(await laptop.locator('#who').textContent(), 'Signed in as alice')
    t.equal(await laptop.locator('#devices .device').count(), 1)
    t.equal(await laptop.locator('#devices .device .badge').textContent(), 'This device')

    const cookies = await laptop.context().cookies()
    const access = cookies.find((cookie) => cookie.name === '__Host-sg-at')
    t.ok(access, 'the browser holds the access token cookie, on the Next.js host')
    t.equal(access?.httpOnly, true, 'which script cannot read')
    t.equal(access?.sameSite, 'Strict')
    t.ok(cookies.some((cookie) => cookie.name === '__Host-sg-fp' && cookie.httpOnly), 'and the fingerprint cookie')

    const phone = await device(PHONE)
    await phone.goto(`${nextOrigin}/login`)
    await phone.getByLabel('Username').fill('alice')
    await phone.getByLabel('Password').fill(PASSWORD)
    await phone.getByRole('button', { name: 'Sign in' }).click()
    await phone.locator('#devices').waitFor()

    await laptop.reload()
    const labels = await laptop.locator('#devices .device .label').allTextContents()
    t.equal(labels.length, 2, 'the second device shows on the first one\'s page')
    t.match(labels.join(' | '), /Windows/, 'named from the User-Agent the server forwarded')
    t.match(labels.join(' | '), /Android/)
    t.match(await laptop.locator('#devices .device').first().textContent(), /Windows.*This device/, 'this device first')

    // The refresh: once the browser has dropped the access token cookie (Max-Age = accessTokenTtl), the
    // middleware refreshes with the refresh cookie (Path=/) before the page renders.
    const before = (await laptop.context().cookies()).find((cookie) => cookie.name === '__Host-sg-at')?.value
    t.ok(before, 'the laptop holds an access token cookie')
    t.equal((await laptop.context().cookies()).find((cookie) => cookie.name === '__Secure-sg-rt')?.path, '/',
      'and the refresh cookie, on every path (refresh.cookiePath)')
    const refreshed = refreshes.length
    await new Promise((resolve) => setTimeout(resolve, TTL_SECONDS * 1000 + 500))
    t.notOk((await laptop.context().cookies()).some((cookie) => cookie.name === '__Host-sg-at'), 'the browser dropped the expired access token cookie')
    await laptop.reload()
    t.equal(new URL(laptop.url()).pathname, '/devices', 'the page still renders')
    t.equal(await laptop.locator('#devices .device').count(), 2)
    t.same(refreshes.slice(refreshed), [204], 'through one refresh, by the middleware')
    const after = (await laptop.context().cookies()).find((cookie) => cookie.name === '__Host-sg-at')?.value
    t.ok(after, 'whose Set-Cookie lines reached the browser')
    t.not(after, before, 'a new access token')

    // A form on another site (or a request without Origin) posting to the revoke or logout route handler
    // with the laptop's cookies is refused there: the handler adds the CSRF header, so it checks the Origin first.
    const phoneId = await laptop.locator('#devices input[name="id"]').getAttribute('value')
    t.ok(phoneId, 'the other device has a sign-out button')
    const jar = (await laptop.context().cookies()).map((cookie) => `${cookie.name}=${cookie.value}`).join('; ')
    const forged = unsafe.length
    for (const [path, origin] of [['/auth/revoke', 'https://evil.test'], ['/auth/revoke', undefined], ['/auth/logout', 'https://evil.test']] as const) {
      const answer = await fetch(`${nextOrigin}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: jar, 'content-type': 'application/x-www-form-urlencoded', 'user-agent': LAPTOP, ...(origin === undefined ? {} : { origin }) },
        body: new URLSearchParams({ id: phoneId ?? '' })
      })
      t.equal(answer.status, 403, `a POST to ${path} ${origin === undefined ? 'without Origin' : `from ${origin}`} is refused`)
    }
    t.same(unsafe.slice(forged), [], 'and never reaches the API')
    t.equal((await api.sessions.list('alice')).length, 2, 'nothing is revoked or signed out')

    // Revoke from another device: the laptop signs the phone out with the button.
    await laptop.getByRole('button', { name: 'Sign out', exact: true }).click()
    await laptop.locator('#devices').waitFor()
    t.equal(new URL(laptop.url()).pathname, '/devices', 'the revoke leads back to the devices page')
    t.equal(await laptop.locator('#devices .device').count(), 1, 'which lists this device only')
    t.same(unsafe.filter((call) => call.method === 'DELETE'), [{ method: 'DELETE', url: `/sessions/${phoneId ?? ''}`, status: 204 }],
      'the API revoked the phone\'s session')
    await phone.reload()
    t.equal(new URL(phone.url()).pathname, '/login', 'the revoked phone is sent to sign in')

    // Logout: the laptop signs out with the button; the API's clearing Set-Cookie lines reach the browser.
    await laptop.getByRole('button', { name: 'Sign out of this device' }).click()
    await laptop.getByRole('button', { name: 'Sign in' }).waitFor()
    t.equal(new URL(laptop.url()).pathname, '/login', 'the logout leads to the sign-in page')
    t.same((await laptop.context().cookies()).filter((cookie) => PLUGIN_COOKIES.includes(cookie.name)).map((cookie) => cookie.name), [],
      'the browser no longer holds the plugin\'s cookies')
    t.same(await api.sessions.list('alice'), [], 'and the API no session')
    await laptop.goto(`${nextOrigin}/devices`)
    t.equal(new URL(laptop.url()).pathname, '/login', 'the devices page sends the browser to sign in')
  })
}
