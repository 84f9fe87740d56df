import cors from '@fastify/cors'
import Fastify, { type FastifyInstance } from 'fastify'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import sessionGuard, { type SessionGuardOptions } from '../lib/index.js'
import { SECRET } from './helper.js'

/**
 * A fully cross-site pair in Chromium: the app's page on https://app.example,
 * the API on https://api.other (two sites), both on 127.0.0.1 through
 * `--host-resolver-rules`, over TLS with a throw-away certificate. With
 * `cookies: { sameSite: 'none', partitioned: true }` the page's script signs
 * in, reaches a guarded route, refreshes and logs out; the same pair with the
 * default `SameSite=Strict` cookies cannot even reach the guarded route.
 * A second pair shares one site: the page on app.example.com, the sign-in on
 * auth.example.com and the API on api.example.com; with `cookies.domain` the
 * cookies the sign-in sets reach the API, without it they do not.
 * Needs Chromium (as `test/browser.test.ts`) and openssl; without them the test
 * skips loudly, except on CI, where it fails.
 */
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A self-signed certificate for both names, made for this run only. */
function throwAwayCertificate (t: Test): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cross-site-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=app.example', '-addext', 'subjectAltName=DNS:app.example,DNS:api.other,DNS:*.example.com',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
  ], { stdio: 'ignore' })
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/** The API on api.other: the plugin, CORS for the app's origin with credentials, and the helper routes. */
async function api (t: Test, https: { key: Buffer, cert: Buffer }, appOrigin: string, options: Partial<SessionGuardOptions>): Promise<number> {
  const app = Fastify({ https })
  t.teardown(() => app.close())
  await app.register(cors, { origin: [appOrigin], credentials: true, allowedHeaders: ['authorization', 'content-type', 'x-requested-with'], methods: ['GET', 'POST'] })
  await app.register(sessionGuard, { secret: SECRET, refresh: { allowedOrigins: [appOrigin] }, ...options })
  app.post('/login', async (request, reply) => ({ accessToken: (await reply.issueSession({ userId: 'alice' })).accessToken }))
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ user: (request.user as { sub: string }).sub }))
  app.post('/refresh', async (request, reply) => ({ accessToken: (await reply.refreshSession()).accessToken }))
  app.post('/logout', { preHandler: app.requireSession }, async (request, reply) => {
    await request.endSession(reply)
    return await reply.code(204).send()
  })
  return await listen(app)
}

/** What the page's script gets back from one call. */
interface Answer { status: number, body: string }

async function call (page: Page, url: string, init: { method?: string, headers?: Record<string, string> }): Promise<Answer> {
  return await page.evaluate(async ({ url, init }) => {
    const response = await fetch(url, { ...init, credentials: 'include' })
    return { status: response.status, body: await response.text() }
  }, { url, init })
}

if (!existsSync(executablePath) || !hasOpenssl()) {
  const missing = existsSync(executablePath) ? 'openssl' : `Chromium at ${executablePath}`
  if (process.env.CI !== undefined) {
    t.fail(`CI is set but no ${missing}`)
  } else {
    console.error(`\n!!! SKIPPING the cross-site browser test: no ${missing} !!!\n`)
    t.plan(0, `no ${missing}`)
  }
} else {
  t.test('an app on another site signs in, reaches the API, refreshes and logs out with SameSite=None; Partitioned', async (t) => {
    const https = throwAwayCertificate(t)
    const page = Fastify({ https })
    t.teardown(() => page.close())
    page.get('/', async (request, reply) => await reply.type('text/html').send('<!doctype html><title>app</title>'))
    const appPort = await listen(page)
    const appOrigin = `https://app.example:${appPort}`
    const crossSite = await api(t, https, appOrigin, { cookies: { sameSite: 'none', partitioned: true } })
    const strict = await api(t, https, appOrigin, {})

    const browser: Browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--host-resolver-rules=MAP app.example 127.0.0.1, MAP api.other 127.0.0.1, MAP *.example.com 127.0.0.1']
    })
    t.teardown(() => browser.close())

    for (const [name, port, expectWorks] of [['SameSite=None; Partitioned', crossSite, true], ['the default SameSite=Strict', strict, false]] as const) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true })
      t.teardown(() => context.close())
      const tab = await context.newPage()
      await tab.goto(`${appOrigin}/`)
      const base = `https://api.other:${port}`

      const login = await call(tab, `${base}/login`, { method: 'POST' })
      t.equal(login.status, 200, `${name}: login`)
      const me = await call(tab, `${base}/me`, { headers: { authorization: `Bearer ${JSON.parse(login.body).accessToken as string}` } })
      if (!expectWorks) {
        t.equal(me.status, 401, `${name}: the fingerprint cookie does not go with a cross-site request, so the guard refuses`)
        continue
      }
      t.equal(me.status, 200, `${name}: the fingerprint cookie goes with the cross-site request`)
      t.same(JSON.parse(me.body), { user: 'alice' })

      // A simple POST (no custom header, so no preflight) is what a cross-site form could send: refused.
      const forged = await call(tab, `${base}/refresh`, { method: 'POST' })
      t.equal(forged.status, 403, `${name}: a refresh without the CSRF header is refused`)
      t.equal(JSON.parse(forged.body).code, 'FST_SESSION_GUARD_CSRF')

      const renewed = await call(tab, `${base}/refresh`, { method: 'POST', headers: { 'x-requested-with': 'fetch' } })
      t.equal(renewed.status, 200, `${name}: the refresh cookie goes with the cross-site refresh; the Origin is allowed`)
      const accessToken = JSON.parse(renewed.body).accessToken as string
      t.equal((await call(tab, `${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status, 200, `${name}: the renewed token works`)

      const held = async (): Promise<unknown[]> => (await context.cookies())
        .filter((cookie) => cookie.domain === 'api.other')
        .map(({ name, path, httpOnly, secure, sameSite, partitionKey }) => ({ name, path, httpOnly, secure, sameSite, partitionKey }))
        .sort((a, b) => a.name.localeCompare(b.name))
      t.same(await held(), [
        { name: '__Host-sg-fp', path: '/', httpOnly: true, secure: true, sameSite: 'None', partitionKey: 'https://app.example' },
        { name: '__Secure-sg-rt', path: '/refresh', httpOnly: true, secure: true, sameSite: 'None', partitionKey: 'https://app.example' }
      ], `${name}: the browser keeps both cookies in the app's partition`)
      const unsafe = await call(tab, `${base}/logout`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } })
      t.equal(unsafe.status, 403, `${name}: a guarded unsafe request without the CSRF header is refused`)
      const out = await call(tab, `${base}/logout`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}`, 'x-requested-with': 'fetch' } })
      t.equal(out.status, 204, `${name}: logout`)
      t.equal((await call(tab, `${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status, 401, `${name}: signed out`)
      t.same(await held(), [], `${name}: the logout cleared both cookies in the browser (a clear without Partitioned would not)`)
    }
  })

  t.test('an API on a sibling subdomain: with cookies.domain the sign-in on auth.example.com reaches api.example.com', async (t) => {
    const https = throwAwayCertificate(t)
    const page = Fastify({ https })
    t.teardown(() => page.close())
    page.get('/', async (request, reply) => await reply.type('text/html').send('<!doctype html><title>app</title>'))
    const appOrigin = `https://app.example.com:${await listen(page)}`
    // One server answers both names: what counts for a cookie is the host name, not the port.
    const shared = await api(t, https, appOrigin, { cookies: { domain: 'example.com' } })
    const hostOnly = await api(t, https, appOrigin, {})

    const browser: Browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--host-resolver-rules=MAP *.example.com 127.0.0.1']
    })
    t.teardown(() => browser.close())

    for (const [name, port, expectWorks] of [['Domain=example.com', shared, true], ['host-only cookies', hostOnly, false]] as const) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true })
      t.teardown(() => context.close())
      const tab = await context.newPage()
      await tab.goto(`${appOrigin}/`)
      const auth = `https://auth.example.com:${port}`
      const apiBase = `https://api.example.com:${port}`
      const csrf = { 'x-requested-with': 'fetch' }

      const login = await call(tab, `${auth}/login`, { method: 'POST' })
      t.equal(login.status, 200, `${name}: sign-in on auth.example.com`)
      const bearer = { authorization: `Bearer ${JSON.parse(login.body).accessToken as string}` }
      const me = await call(tab, `${apiBase}/me`, { headers: bearer })
      if (!expectWorks) {
        t.equal(me.status, 401, `${name}: the fingerprint cookie stays with auth.example.com, so api.example.com refuses`)
        continue
      }
      t.equal(me.status, 200, `${name}: the fingerprint cookie reaches api.example.com`)
      const held = async (): Promise<unknown[]> => (await context.cookies())
        .filter((cookie) => cookie.name.startsWith('__'))
        .map(({ name, domain, path, sameSite }) => ({ name, domain, path, sameSite }))
        .sort((a, b) => a.name.localeCompare(b.name))
      t.same(await held(), [
        { name: '__Secure-sg-fp', domain: '.example.com', path: '/', sameSite: 'Strict' },
        { name: '__Secure-sg-rt', domain: '.example.com', path: '/refresh', sameSite: 'Strict' }
      ], `${name}: both cookies held for the whole domain`)
      const renewed = await call(tab, `${apiBase}/refresh`, { method: 'POST', headers: csrf })
      t.equal(renewed.status, 200, `${name}: the refresh cookie reaches api.example.com too`)
      const out = await call(tab, `${apiBase}/logout`, { method: 'POST', headers: { authorization: `Bearer ${JSON.parse(renewed.body).accessToken as string}`, ...csrf } })
      t.equal(out.status, 204, `${name}: logout on api.example.com`)
      t.same(await held(), [], `${name}: the logout cleared both cookies (a clear without the Domain would not)`)
    }
  })
}
