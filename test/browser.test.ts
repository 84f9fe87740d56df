import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import t from 'tap'
import { DEMO_ADDRESSES } from '../examples/geo.js'
import { buildServer } from '../examples/server.js'
import { canRunBrowser, launch, signInToExample } from './browser-helper.js'

/**
 * The "Your devices" page in a real browser: two browser contexts are two
 * devices of alice; one signs the other out. Needs Debian's Chromium
 * (`apt-get install chromium`, or CHROMIUM_PATH); without it the test skips
 * loudly, except on CI, where it fails.
 */
const SCREENSHOT = join(__dirname, '..', 'docs', 'img', 'devices.png')

const DEVICES = {
  laptop: {
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
    hints: { 'sec-ch-ua': '"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Windows"' },
    name: 'Edge on Windows'
  },
  phone: {
    userAgent: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    hints: { 'sec-ch-ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"' },
    name: 'Chrome on Android'
  }
}

if (canRunBrowser('the browser test')) {
  t.test('two devices: both listed and named, one signs the other out', async (t) => {
    const app = await buildServer({ logger: false })
    t.teardown(() => app.close())
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

    const browser = await launch(t)

    async function device (kind: keyof typeof DEVICES): Promise<{ page: Page }> {
      const { page } = await signInToExample(browser, base, DEVICES[kind])
      await page.locator('#devices').waitFor({ state: 'visible' })
      return { page }
    }

    const laptop = await device('laptop')
    const phone = await device('phone')
    await laptop.page.reload()
    await laptop.page.locator('#devices').waitFor({ state: 'visible' })

    for (const [kind, { page }] of [['laptop', laptop], ['phone', phone]] as const) {
      const items = page.locator('#device-list .device')
      await items.nth(1).waitFor()
      t.equal(await items.count(), 2, `${kind} sees two devices`)
      t.same((await items.locator('.label').allTextContents()).sort(), [DEVICES.laptop.name, DEVICES.phone.name].sort(), `${kind} sees both names`)
      t.equal(await items.first().locator('.label').textContent(), DEVICES[kind].name, `${kind} is listed first`)
      t.equal(await items.first().locator('.badge:not(.warn)').textContent(), 'This device')
      t.same(await page.locator('.device', { hasText: DEVICES.phone.name }).locator('.badge.warn').allTextContents(), ['New device'], 'the second device signed in is flagged as new')
      t.equal(await items.first().locator('button').count(), 0, 'no revoke button on this device')
    }
    t.match(await laptop.page.locator('#who').textContent(), 'alice')
    await laptop.page.screenshot({ path: SCREENSHOT })

    // The laptop signs the phone out, after saying yes to the question a revoke asks first.
    const phoneItem = laptop.page.locator('.device', { hasText: DEVICES.phone.name })
    await phoneItem.getByRole('button', { name: 'Revoke' }).click()
    t.equal(await phoneItem.locator('.question').textContent(), `Sign out ${DEVICES.phone.name}?`, 'a revoke asks first')
    await phoneItem.getByRole('button', { name: 'Cancel' }).click()
    t.equal(await laptop.page.locator('#device-list .device').count(), 2, 'cancelled: nothing signed out')
    await phoneItem.getByRole('button', { name: 'Revoke' }).click()
    await phoneItem.getByRole('button', { name: 'Sign out', exact: true }).click()
    await laptop.page.locator('#device-list .device').nth(1).waitFor({ state: 'detached' })
    t.equal(await laptop.page.locator('#device-list .device').count(), 1, 'the laptop now sees one device')
    // The page renders the device list first, then the alerts and the history, each after its own request:
    // the list can be new while the history is still the one from before the revocation.
    await laptop.page.waitForFunction('document.querySelector(\'#history-list li .what\')?.textContent === \'Signed out by you\'', null, { timeout: 10_000 })
      .catch(() => {})
    const activity = await laptop.page.locator('#history-list li .what').allTextContents()
    t.equal(activity[0], 'Signed out by you', 'recent activity, newest first: the revocation just made')
    t.ok(activity.includes('New device: flagged') && activity.filter((line) => line === 'Signed in').length === 2, activity.join(' | '))

    // The phone's next action finds its session gone and returns to the login form.
    await phone.page.getByRole('button', { name: 'Sign out of all other devices' }).click()
    await phone.page.locator('#login').waitFor({ state: 'visible' })
    t.match(await phone.page.locator('#login-error').textContent(), 'signed out')
    t.equal((await app.sessions.list('user-alice')).length, 1)
  })

  t.test('a sign-in from the other side of the world is challenged, and the code printed in the log lets it in', async (t) => {
    const lines: string[] = []
    const app = await buildServer({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
    t.teardown(() => app.close())
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const browser = await launch(t)
    const signIn = async (address: string): Promise<Page> =>
      (await signInToExample(browser, base, DEVICES.laptop, { username: 'bob', headers: { 'x-forwarded-for': address } })).page

    const paris = await signIn(DEMO_ADDRESSES.paris)
    await paris.locator('#devices').waitFor({ state: 'visible' })
    const sydney = await signIn(DEMO_ADDRESSES.sydney)
    await sydney.locator('#step-up').waitFor({ state: 'visible' })
    t.pass('the Sydney sign-in minutes after Paris asks for a code')
    const code = lines.map((line) => JSON.parse(line) as { code?: string }).find((line) => line.code !== undefined)?.code as string
    t.match(code, /^[0-9]{6}$/, 'the code is in the server log')
    await sydney.getByLabel('Code').fill(code === '000000' ? '000001' : '000000')
    await sydney.getByRole('button', { name: 'Verify' }).click()
    await sydney.locator('#step-up-error').filter({ hasText: 'Wrong code' }).waitFor()
    t.pass('a wrong code is refused on the page')
    await sydney.setViewportSize({ width: 760, height: 420 })
    await sydney.screenshot({ path: join(__dirname, '..', 'docs', 'img', 'step-up.png') })
    await sydney.getByLabel('Code').fill(code)
    await sydney.getByRole('button', { name: 'Verify' }).click()
    await sydney.locator('#devices').waitFor({ state: 'visible' })
    t.equal(await sydney.locator('#device-list .device').count(), 2, 'verified: the devices page, with both sign-ins')
    t.ok((await sydney.locator('#history-list li .what').allTextContents()).includes('Verification completed'), 'and the history says so')
  })
}
