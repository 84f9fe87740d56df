import cors from '@fastify/cors'
import httpProxy from '@fastify/http-proxy'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { call, canRunBrowser, launch } from './browser-helper.js'
import { SECRET } from './helper.js'

/**
 * The recipes of `docs/deployment.md` in Chromium, each over TLS with a
 * throw-away certificate, every name mapped to 127.0.0.1 by
 * `--host-resolver-rules`:
 *
 * 1. same origin: the page and the API on https://site.example (the defaults);
 * 2. same origin behind a TLS-terminating proxy (`@fastify/http-proxy`) that
 *    serves https://shop.example, forwards `/api/*` over plain HTTP without the
 *    prefix, with `X-Forwarded-Proto` and `X-Forwarded-Host`; the API trusts it
 *    and gives the refresh cookie the path the browser sees;
 * 3. the page on app.example.com, the sign-in on auth.example.com, the API on
 *    api.example.com (`cookies.domain`, CORS with credentials);
 * 4. fully cross-site: the page on app.example, the API on api.other
 *    (`SameSite=None; Partitioned`, CORS with credentials).
 *
 * One scenario runs on each: device A signs in, makes a guarded call and
 * refreshes; device B (another browser context) signs in as the same user,
 * lists the sessions and revokes A's, whose next call is refused; a foreign
 * site's form and script then try B's refresh route and a guarded unsafe
 * route, and are refused, which the API's own records show; B logs out and
 * its cookies are gone. Each recipe's controls drop the option the recipe
 * needs and show the step it breaks. Needs Chromium and openssl; without
 * them the file skips loudly, except on CI, where it fails.
 */

// Four recipes, two browser devices and two foreign pages each, on a shared machine: more than tap's two minutes per file.
t.setTimeout(300_000)

const CSRF = { 'x-requested-with': 'fetch' }
const CORS = { credentials: true, allowedHeaders: ['authorization', 'content-type', 'x-requested-with'], methods: ['GET', 'HEAD', 'POST', 'DELETE'] }

/** A self-signed certificate for every name, made for this run only. */
function throwAwayCertificate (t: Test): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-topologies-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=site.example',
    '-addext', 'subjectAltName=DNS:*.example,DNS:*.example.com,DNS:api.other,DNS:evil.test',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
  ], { stdio: 'ignore' })
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

const BLANK = '<!doctype html><meta charset="utf-8"><title>page</title>'

/** What the API answered one request, as its own hooks saw it. */
interface Seen { method: string, path: string, status: number, code?: string | undefined }

/** How a recipe deploys its API: Fastify's `trustProxy`, the plugin's options, CORS for the app's origin. */
interface Setup {
  trustProxy?: string
  plugin: Partial<SessionGuardOptions>
  cors?: string
}

/** One deployment as the browser reaches it. */
interface Deployment {
  /** The app's page. */
  page: string
  /** Where the page's script signs in (`POST /login`). */
  signIn: string
  /** Where it calls the rest, refresh and session routes included. */
  api: string
  /** The API itself. */
  app: FastifyInstance
  /** Every answer of the API, newest last. */
  seen: Seen[]
}

/**
 * The API: the plugin with its session routes under `/sessions` (the devices
 * page's list and revoke), a sign-in for alice, a guarded `GET /me` and
 * `POST /orders`, the refresh and the logout; the page itself on `/`. Its hooks
 * record each answer with the plugin's error code.
 */
async function api (t: Test, tls: { key: Buffer, cert: Buffer } | undefined, setup: Setup): Promise<{ app: FastifyInstance, port: number, seen: Seen[] }> {
  // Behind the proxy, plain HTTP; otherwise TLS of its own.
  const app = (tls === undefined ? Fastify({ trustProxy: setup.trustProxy ?? false }) : Fastify({ https: tls })) as FastifyInstance
  t.teardown(() => app.close())
  const seen: Seen[] = []
  const codes = new WeakMap<FastifyRequest, string>()
  app.addHook('onError', async (request, reply, error) => { codes.set(request, error.code) })
  app.addHook('onResponse', async (request, reply) => {
    seen.push({ method: request.method, path: request.url.split('?')[0]!, status: reply.statusCode, code: codes.get(request) })
  })
  // An app that also takes HTML forms: a forged form reaches the plugin instead of a 415.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })
  if (setup.cors !== undefined) await app.register(cors, { origin: [setup.cors], ...CORS })
  await app.register(sessionGuard, { secret: SECRET, routes: { prefix: '/sessions' }, ...setup.plugin })
  app.get('/', async (request, reply) => await reply.type('text/html').send(BLANK))
  app.post('/login', async (request, reply) => ({ accessToken: (await reply.issueSession({ userId: 'alice' })).accessToken }))
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ user: (request.user as { sub: string }).sub }))
  app.post('/orders', { preHandler: app.requireSession }, async (request, reply) => await reply.code(201).send({ ordered: true }))
  app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return await reply.code(204).send()
  })
  return { app, port: await listen(app), seen }
}

/** The other sites' pages: the app's own page where it is not the API's, and a foreign site's form. */
function pages (tls: { key: Buffer, cert: Buffer }): FastifyInstance {
  const app = Fastify({ https: tls })
  app.get('/', async (request, reply) => await reply.type('text/html').send(BLANK))
  app.get<{ Querystring: { action: string } }>('/form', async (request, reply) => {
    const action = request.query.action.replace(/&/g, '&amp;').replace(/"/g, '&quot;')
    return await reply.type('text/html').send(`${BLANK}<form method="POST" action="${action}"><input type="hidden" name="amount" value="1000"><button>Win a prize</button></form>`)
  })
  return app
}

interface Env {
  tls: { key: Buffer, cert: Buffer }
  /** The port of `pages`: https://app.example:<port>, https://evil.test:<port> … */
  pagesPort: number
}

/** A cookie as the browser holds it. */
interface Held { name: string, domain: string, path: string, sameSite: string, partitionKey?: string }

/** A change to a recipe that breaks it, and the step that then fails. */
interface Control { name: string, change: (setup: Setup) => Setup, fails: 'guarded call' | 'refresh', status: number, why: string }

interface Topology {
  name: string
  /** The recipe's setup, as `docs/deployment.md` gives it. */
  setup: (env: Env) => Setup
  deploy: (t: Test, env: Env, setup: Setup) => Promise<Deployment>
  /** The plugin's cookies the browser holds after the sign-in. */
  cookies: Held[]
  /** Sites whose pages try the routes; the foreign site, https://evil.test, for all. */
  attackers: (env: Env) => string[]
  /** Why a foreign form's POST to a guarded route is refused: it cannot send the access token, or the guard's CSRF check (when the cookies go cross-site). */
  guardedFormCode: string
  controls: Control[]
}

const EVIL = (env: Env): string => `https://evil.test:${env.pagesPort}`
const APP_EXAMPLE = (env: Env): string => `https://app.example:${env.pagesPort}`
const APP_EXAMPLE_COM = (env: Env): string => `https://app.example.com:${env.pagesPort}`

const TOPOLOGIES: Topology[] = [
  {
    name: 'same origin',
    setup: () => ({ plugin: {} }),
    async deploy (t, env, setup) {
      const { app, port, seen } = await api(t, env.tls, setup)
      const origin = `https://site.example:${port}`
      return { page: `${origin}/`, signIn: origin, api: origin, app, seen }
    },
    cookies: [
      { name: '__Host-sg-fp', domain: 'site.example', path: '/', sameSite: 'Strict' },
      { name: '__Secure-sg-rt', domain: 'site.example', path: '/refresh', sameSite: 'Strict' }
    ],
    attackers: (env) => [EVIL(env)],
    guardedFormCode: 'FST_SESSION_GUARD_UNAUTHORIZED',
    controls: []
  },
  {
    name: 'same origin behind a TLS-terminating proxy that strips /api',
    setup: () => ({ trustProxy: '127.0.0.1', plugin: { refresh: { cookiePath: '/api/refresh' } } }),
    async deploy (t, env, setup) {
      const { app, port, seen } = await api(t, undefined, setup)
      const proxy = Fastify({ https: env.tls })
      t.teardown(() => proxy.close())
      proxy.get('/', async (request, reply) => await reply.type('text/html').send(BLANK))
      await proxy.register(httpProxy, {
        upstream: `http://127.0.0.1:${port}`,
        prefix: '/api',
        rewritePrefix: '/',
        // What nginx's `proxy_set_header X-Forwarded-Proto $scheme; … X-Forwarded-Host $host;` sends.
        replyOptions: {
          rewriteRequestHeaders: (request, headers) => ({ ...headers, 'x-forwarded-proto': 'https', 'x-forwarded-host': request.headers.host, 'x-forwarded-for': request.ip })
        }
      })
      const origin = `https://shop.example:${await listen(proxy)}`
      return { page: `${origin}/`, signIn: `${origin}/api`, api: `${origin}/api`, app, seen }
    },
    cookies: [
      { name: '__Host-sg-fp', domain: 'shop.example', path: '/', sameSite: 'Strict' },
      { name: '__Secure-sg-rt', domain: 'shop.example', path: '/api/refresh', sameSite: 'Strict' }
    ],
    attackers: (env) => [EVIL(env)],
    guardedFormCode: 'FST_SESSION_GUARD_UNAUTHORIZED',
    controls: [
      {
        name: 'without trustProxy',
        change: (setup) => ({ plugin: setup.plugin }),
        fails: 'refresh',
        status: 403,
        why: 'the browser\'s Origin (https://shop.example) is not the origin the API sees (http:// and the upstream host)'
      },
      {
        name: 'without refresh.cookiePath',
        change: (setup) => ({ ...setup, plugin: {} }),
        fails: 'refresh',
        status: 401,
        why: 'the refresh cookie has Path=/refresh and never goes with /api/refresh'
      }
    ]
  },
  {
    name: 'the API on a same-site subdomain, with cookies.domain',
    setup: (env) => ({ cors: APP_EXAMPLE_COM(env), plugin: { cookies: { domain: 'example.com' }, refresh: { allowedOrigins: [APP_EXAMPLE_COM(env)] } } }),
    async deploy (t, env, setup) {
      // One server answers both names: what counts for a cookie is the host name, not the port.
      const { app, port, seen } = await api(t, env.tls, setup)
      return { page: `${APP_EXAMPLE_COM(env)}/`, signIn: `https://auth.example.com:${port}`, api: `https://api.example.com:${port}`, app, seen }
    },
    cookies: [
      { name: '__Secure-sg-fp', domain: '.example.com', path: '/', sameSite: 'Strict' },
      { name: '__Secure-sg-rt', domain: '.example.com', path: '/refresh', sameSite: 'Strict' }
    ],
    // A sibling is same-site: its form's POST carries the Strict cookies, so only the refresh's CSRF header stops it.
    attackers: (env) => [EVIL(env), `https://blog.example.com:${env.pagesPort}`],
    guardedFormCode: 'FST_SESSION_GUARD_UNAUTHORIZED',
    controls: [{
      name: 'host-only cookies (no cookies.domain)',
      change: (setup) => ({ ...setup, plugin: { ...setup.plugin, cookies: {} } }),
      fails: 'guarded call',
      status: 401,
      why: 'the fingerprint cookie set by auth.example.com stays with it, so api.example.com refuses'
    }]
  },
  {
    name: 'fully cross-site, SameSite=None; Partitioned',
    setup: (env) => ({ cors: APP_EXAMPLE(env), plugin: { cookies: { sameSite: 'none', partitioned: true }, refresh: { allowedOrigins: [APP_EXAMPLE(env)] } } }),
    async deploy (t, env, setup) {
      const { app, port, seen } = await api(t, env.tls, setup)
      return { page: `${APP_EXAMPLE(env)}/`, signIn: `https://api.other:${port}`, api: `https://api.other:${port}`, app, seen }
    },
    cookies: [
      { name: '__Host-sg-fp', domain: 'api.other', path: '/', sameSite: 'None', partitionKey: 'https://app.example' },
      { name: '__Secure-sg-rt', domain: 'api.other', path: '/refresh', sameSite: 'None', partitionKey: 'https://app.example' }
    ],
    attackers: (env) => [EVIL(env)],
    // The cookies may arrive cross-site, so the guard checks CSRF before it looks for a token.
    guardedFormCode: 'FST_SESSION_GUARD_CSRF',
    controls: [{
      name: 'the default SameSite=Strict',
      change: (setup) => ({ ...setup, plugin: { ...setup.plugin, cookies: {} } }),
      fails: 'guarded call',
      status: 401,
      why: 'the fingerprint cookie does not go with a cross-site request'
    }]
  }
]

/** The plugin's cookies in a browser context, sorted by name. */
async function held (context: BrowserContext): Promise<Held[]> {
  return (await context.cookies())
    .filter((cookie) => cookie.name.startsWith('__'))
    .map(({ name, domain, path, sameSite, partitionKey }) => ({ name, domain, path, sameSite, ...(partitionKey === undefined ? {} : { partitionKey }) }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

async function device (browser: Browser, deployment: Deployment): Promise<{ context: BrowserContext, page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  const page = await context.newPage()
  await page.goto(deployment.page)
  return { context, page }
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const tokenOf = (body: string): string => JSON.parse(body).accessToken as string

/** What of alice's sessions a forged request could change: which exist, and their refresh state. */
async function state (app: FastifyInstance): Promise<string> {
  return JSON.stringify((await app.sessions.list('alice')).map((session) => [session.id, session.refresh]))
}

/**
 * A foreign page, in the victim's browser (same cookie jar), tries the
 * refresh route and a guarded unsafe route twice: with a real HTML form the
 * user submits, and with a script's `fetch` that sends the cookies and the
 * CSRF header. The API's records say what reached it and how it answered.
 */
async function forgeries (t: Test, topology: Topology, deployment: Deployment, victim: BrowserContext, attacker: string): Promise<void> {
  const [form, script] = [await victim.newPage(), await victim.newPage()]
  await script.goto(`${attacker}/`)
  const before = await state(deployment.app)
  for (const [path, code] of [['/refresh', 'FST_SESSION_GUARD_CSRF'], ['/orders', topology.guardedFormCode]] as const) {
    const target = `${deployment.api}${path}`
    // What the API itself sees: behind the proxy, without its prefix. (The browser also asks it for a favicon.)
    const apiPath = new URL(target).pathname.replace(/^\/api\//, '/')
    const reaching = (): Seen[] => deployment.seen.filter((seen) => seen.path === apiPath)

    deployment.seen.length = 0
    await form.goto(`${attacker}/form?action=${encodeURIComponent(target)}`)
    await Promise.all([form.waitForURL(target), form.getByRole('button', { name: 'Win a prize' }).click()])
    t.same(reaching().map(({ method, status, code }) => ({ method, status, code })),
      [{ method: 'POST', status: code === 'FST_SESSION_GUARD_CSRF' ? 403 : 401, code }],
      `${attacker}'s form to ${path}: the API refused it with ${code}`)

    deployment.seen.length = 0
    const fetched = await script.evaluate(async ({ target, headers }) => {
      try {
        return String((await fetch(target, { method: 'POST', credentials: 'include', headers })).status)
      } catch (err) {
        return String(err)
      }
    }, { target, headers: CSRF })
    t.match(fetched, /TypeError/, `${attacker}'s fetch to ${path} with credentials and the CSRF header: the browser blocked it`)
    t.same(reaching().map(({ method }) => method), ['OPTIONS'],
      `${attacker}'s fetch to ${path}: blocked by the CORS preflight, the only request that reached the API (FST_SESSION_GUARD_CSRF never came into play)`)
  }
  t.equal(await state(deployment.app), before, `${attacker}: no session created, revoked or rotated`)
  await Promise.all([form.close(), script.close()])
}

/** The scenario every recipe must pass. */
async function scenario (t: Test, browser: Browser, env: Env, topology: Topology): Promise<void> {
  const deployment = await topology.deploy(t, env, topology.setup(env))
  const { signIn, api } = deployment

  const a = await device(browser, deployment)
  t.teardown(() => a.context.close())
  const loginA = await call(a.page, `${signIn}/login`, { method: 'POST' })
  t.equal(loginA.status, 200, 'A signs in')
  t.same(await held(a.context), topology.cookies, 'A holds the recipe\'s cookies')
  t.equal((await call(a.page, `${api}/me`, { headers: bearer(tokenOf(loginA.body)) })).status, 200, 'A: a guarded call')
  const refreshed = await call(a.page, `${api}/refresh`, { method: 'POST', headers: CSRF })
  t.equal(refreshed.status, 200, 'A refreshes')
  const tokenA = tokenOf(refreshed.body)
  t.equal((await call(a.page, `${api}/me`, { headers: bearer(tokenA) })).status, 200, 'A: the renewed token works')

  const b = await device(browser, deployment)
  t.teardown(() => b.context.close())
  const loginB = await call(b.page, `${signIn}/login`, { method: 'POST' })
  t.equal(loginB.status, 200, 'B signs in as the same user')
  const tokenB = tokenOf(loginB.body)
  const listed = await call(b.page, `${api}/sessions`, { headers: bearer(tokenB) })
  t.equal(listed.status, 200, 'B lists the sessions')
  const sessions = JSON.parse(listed.body).sessions as Array<{ id: string, isCurrent: boolean }>
  t.same(sessions.map(({ isCurrent }) => isCurrent), [true, false], 'B\'s own first, then A\'s')
  const revoked = await call(b.page, `${api}/sessions/${encodeURIComponent(sessions[1]!.id)}`, { method: 'DELETE', headers: { ...bearer(tokenB), ...CSRF } })
  t.equal(revoked.status, 204, 'B revokes A')
  t.equal((await call(a.page, `${api}/me`, { headers: bearer(tokenA) })).status, 401, 'A\'s next guarded call is refused')
  t.equal((await call(a.page, `${api}/refresh`, { method: 'POST', headers: CSRF })).status, 401, 'and so is its refresh')

  for (const attacker of topology.attackers(env)) await forgeries(t, topology, deployment, b.context, attacker)
  t.equal((await call(b.page, `${api}/me`, { headers: bearer(tokenB) })).status, 200, 'B is still signed in')

  const out = await call(b.page, `${api}/logout`, { method: 'POST', headers: { ...bearer(tokenB), ...CSRF } })
  t.equal(out.status, 204, 'B logs out')
  t.same(await held(b.context), [], 'the logout cleared B\'s cookies in the browser')
  t.equal((await call(b.page, `${api}/me`, { headers: bearer(tokenB) })).status, 401, 'B is signed out')
}

/** The recipe without one of its options: the step that needs the option fails. */
async function control (t: Test, browser: Browser, env: Env, topology: Topology, { change, fails, status, why }: Control): Promise<void> {
  const deployment = await topology.deploy(t, env, change(topology.setup(env)))
  const { context, page } = await device(browser, deployment)
  t.teardown(() => context.close())
  const login = await call(page, `${deployment.signIn}/login`, { method: 'POST' })
  t.equal(login.status, 200, 'signs in')
  const guarded = await call(page, `${deployment.api}/me`, { headers: bearer(tokenOf(login.body)) })
  t.equal(guarded.status, fails === 'guarded call' ? status : 200, fails === 'guarded call' ? why : 'the guarded call')
  if (fails === 'refresh') t.equal((await call(page, `${deployment.api}/refresh`, { method: 'POST', headers: CSRF })).status, status, why)
}

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

if (canRunBrowser('the deployment recipes in Chromium', () => hasOpenssl() ? undefined : 'openssl')) {
  const tls = throwAwayCertificate(t)
  const sites = pages(tls)
  t.teardown(() => sites.close())
  const ready = (async () => {
    const env: Env = { tls, pagesPort: await listen(sites) }
    const browser = await launch(t, ['--host-resolver-rules=MAP *.example 127.0.0.1, MAP *.example.com 127.0.0.1, MAP api.other 127.0.0.1, MAP evil.test 127.0.0.1'])
    return { env, browser }
  })()

  for (const topology of TOPOLOGIES) {
    t.test(topology.name, async (t) => {
      const { env, browser } = await ready
      await t.test('sign-in, guarded call, refresh, revoke from another device, forged requests refused, logout', async (t) => await scenario(t, browser, env, topology))
      for (const each of topology.controls) {
        await t.test(`control, ${each.name}: the ${each.fails} fails`, async (t) => await control(t, browser, env, topology, each))
      }
    })
  }
}
