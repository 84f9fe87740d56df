import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { type Browser, chromium, type Page } from 'playwright-core'
import t from 'tap'
import { DEMO_ADDRESSES } from '../examples/geo.js'
import { buildServer } from '../examples/server.js'

/**
 * The example's admin dashboard in a real browser: real sign-ins (three
 * places, two devices, a sign-out, a lockout, anomalies) through the
 * example's login, then alice opens the dashboard from her devices page and
 * every chart is checked against them; the user search revokes one of bob's
 * sessions. Needs Debian's Chromium (`apt-get install chromium`, or
 * CHROMIUM_PATH); without it the test skips loudly, except on CI, where it fails.
 */
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SCREENSHOT = join(__dirname, '..', 'docs', 'img', 'admin-dashboard.png')

const AGENTS = {
  windows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
  android: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  linux: 'Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0'
}

if (!existsSync(executablePath)) {
  if (process.env.CI !== undefined) {
    t.fail(`CI is set but no Chromium at ${executablePath}: install it (apt-get install chromium) or set CHROMIUM_PATH`)
  } else {
    console.error(`\n!!! SKIPPING the dashboard browser test: no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH) !!!\n`)
    t.plan(0, 'no Chromium found')
  }
} else {
  t.test('the admin dashboard draws its charts from real sign-ins, and revokes a session from the user search', async (t) => {
    const app = await buildServer({ logger: false })
    t.teardown(() => app.close())
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

    // bob, through the example's login: Paris on Windows, then New York on Android and Sydney on an iPhone
    // minutes later (new devices, new countries, impossible travel); he signs out in Paris.
    const login = async (username: string, password: string, ip: string, ua: string) => await app.inject({
      method: 'POST', url: '/login', payload: { username, password }, headers: { 'x-forwarded-for': ip, 'user-agent': ua }
    })
    const paris = await login('bob', 'demo-password', DEMO_ADDRESSES.paris, AGENTS.windows)
    t.equal((await login('bob', 'demo-password', DEMO_ADDRESSES.newYork, AGENTS.android)).statusCode, 200)
    t.equal((await login('bob', 'demo-password', DEMO_ADDRESSES.sydney, AGENTS.iphone)).statusCode, 200)
    const fingerprint = paris.cookies.find((cookie) => cookie.name === '__Host-sg-fp')?.value as string
    const logout = await app.inject({
      method: 'POST', url: '/logout', headers: { authorization: `Bearer ${paris.json().accessToken as string}`, cookie: `__Host-sg-fp=${fingerprint}`, 'x-forwarded-for': DEMO_ADDRESSES.paris, 'user-agent': AGENTS.windows }
    })
    t.equal(logout.statusCode, 204, 'bob signs out in Paris')
    // Someone guesses bob's password until the lockout answers.
    const guesses: number[] = []
    for (let i = 0; i < 6; i++) guesses.push((await login('bob', 'wrong-password', '203.0.113.9', AGENTS.linux)).statusCode)
    t.same(guesses, [401, 401, 401, 401, 401, 429], 'five failures, then locked out')

    const browser: Browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    })
    t.teardown(() => browser.close())

    async function signIn (username: string): Promise<Page> {
      const context = await browser.newContext({ userAgent: AGENTS.linux, viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1, locale: 'en-GB', timezoneId: 'UTC' })
      const page = await context.newPage()
      await page.goto(base)
      await page.getByLabel('Username').fill(username)
      await page.getByLabel('Password').fill('demo-password')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.locator('#devices').waitFor({ state: 'visible' })
      return page
    }

    // alice, the admin, follows the link on her devices page.
    const page = await signIn('alice')
    await page.getByRole('link', { name: 'Sessions dashboard' }).click()
    await page.locator('#dashboard').waitFor({ state: 'visible' })
    const tile = async (name: string) => Number(await page.locator(`[data-tile="${name}"] .value`).textContent())
    t.equal(await tile('sessions'), 3, 'live: alice\'s, and bob\'s in New York and Sydney')
    t.equal(await tile('users'), 2)
    t.equal(await tile('signIns'), 4)
    t.ok(await tile('lockouts') >= 1, 'the lockout is counted')
    t.ok(await tile('anomalies') >= 2, 'bob\'s new devices and countries, and his travel, are counted')

    const bars = async (chart: string) => await page.locator(`svg[data-chart="${chart}"] rect.bar`).evaluateAll((rects) =>
      Object.fromEntries(rects.map((rect) => [rect.getAttribute('data-label'), Number(rect.getAttribute('data-value'))])) as Record<string, number>)
    t.same(await bars('sessions-per-user'), { 1: 1, 2: 1 }, 'one user with one session (alice), one with two (bob)')
    const durations = await bars('session-durations')
    t.equal(durations['1 min'], 1, 'the Paris session ended within a minute')
    t.equal(Object.values(durations).reduce((a, b) => a + b, 0), 1, 'and it is the only ended session')
    t.equal(await page.locator('svg[data-chart="session-durations"] text.axis-title').first().textContent(), 'Sessions', 'axes are labelled')

    const countries = await page.locator('#countries tbody tr').evaluateAll((rows) => Object.fromEntries(rows.map((row) =>
      [row.getAttribute('data-country'), [row.querySelector('.signins')?.textContent, row.querySelector('.live')?.textContent].map(Number)])))
    t.same(countries, { FR: [1, 0], US: [1, 1], AU: [1, 1], unknown: [1, 1] }, 'sign-ins and live sessions by country')
    t.match(await page.locator('#countries tbody tr[data-country="AU"] th').textContent(), 'Australia')

    const shares = async (chart: string) => await page.locator(`[data-chart="${chart}"] li`).evaluateAll((items) =>
      Object.fromEntries(items.map((item) => [item.getAttribute('data-label'), Number(item.getAttribute('data-value'))])) as Record<string, number>)
    const devices = await shares('device-types')
    t.equal(devices.mobile, 2 / 3, 'two of three live sessions on a phone')
    t.equal(devices.desktop, 1 / 3)
    t.same(Object.keys(await shares('browsers')).sort(), ['Chrome', 'Firefox', 'Safari'])

    const activeSamples = await page.locator('svg[data-chart="active-sessions"] circle.point').evaluateAll((dots) => dots.map((dot) => Number(dot.getAttribute('data-value'))))
    t.equal(activeSamples.at(-1), 3, 'the active-sessions line ends at the live count')
    const security = await page.locator('svg[data-chart="security-events"] circle.point').evaluateAll((dots) => dots.map((dot) => [dot.getAttribute('data-series'), Number(dot.getAttribute('data-value'))]))
    t.ok(security.some(([series, n]) => series === 'Lockouts' && (n as number) >= 1), 'lockouts over time')
    t.ok(security.some(([series, n]) => series === 'Anomalies' && (n as number) >= 2), 'anomalies over time')
    t.same(await page.locator('#chart-security .legend li').allTextContents(), ['Anomalies', 'Lockouts', 'Failed sign-ins'], 'a legend names each line')

    // The user search: bob's two live sessions and his history, then a revoke.
    await page.getByLabel('User id').fill('user-bob')
    await page.getByRole('button', { name: 'Show' }).click()
    const sessions = page.locator('#user-sessions .device[data-session-id]')
    await sessions.nth(1).waitFor()
    t.same((await sessions.locator('.label').allTextContents()).sort(), ['Chrome on Android', 'Safari on iPhone'])
    const history = await page.locator('#user-history li .what').allTextContents()
    t.ok(history.includes('Signed out by the user · lasted under a minute'), history.join(' | '))
    t.ok(history.includes('Locked out (username)') && history.some((line) => line.startsWith('Anomaly: impossible_travel')), 'the lockout and the anomalies are in his history')
    await page.screenshot({ path: SCREENSHOT, fullPage: true })

    page.once('dialog', (dialog) => { dialog.accept().catch(() => {}) })
    await sessions.filter({ hasText: 'Safari on iPhone' }).getByRole('button', { name: 'Revoke' }).click()
    await sessions.nth(1).waitFor({ state: 'detached' })
    t.same(await sessions.locator('.label').allTextContents(), ['Chrome on Android'], 'the revoked session is gone from the list')
    t.equal((await app.sessions.list('user-bob')).length, 1, 'and from the store')
    await page.locator('[data-tile="sessions"] .value').filter({ hasText: /^2$/ }).waitFor()
    t.pass('the overview is redrawn with two live sessions')
    t.match((await page.locator('#user-history li .what').allTextContents())[0], 'Signed out by an administrator')

    // On a phone, each chart is redrawn at the phone's width, so its text keeps its size.
    await page.setViewportSize({ width: 390, height: 844 })
    await page.waitForFunction('Number(document.querySelector(\'svg[data-chart="active-sessions"]\')?.getAttribute(\'width\')) < 390')
    const box = await page.locator('svg[data-chart="sessions-per-user"]').boundingBox()
    t.ok(box !== null && box.width <= 390, `the histogram fits the phone (${box?.width ?? 0} px wide)`)

    // bob is no admin: the page says so, and the routes refuse him.
    const bob = await signIn('bob')
    await bob.goto(`${base}/admin.html`)
    await bob.locator('#denied').waitFor({ state: 'visible' })
    t.equal(await bob.locator('#denied-text').textContent(), 'This page is for administrators only. Go to your devices.')
    // The full stop follows the link on its line, not on a grid row of its own.
    const rows = await bob.evaluate(`(() => {
      const walker = document.createTreeWalker(document.querySelector('#denied-text'), NodeFilter.SHOW_TEXT)
      const tops = new Set()
      for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
        const range = document.createRange()
        range.selectNodeContents(node)
        for (const rect of range.getClientRects()) tops.add(Math.round(rect.top))
      }
      return tops.size
    })()`)
    t.equal(rows, 1, 'the notice is one line')
    t.equal(await bob.locator('#dashboard').isHidden(), true)
  })
}
