import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { DEMO_ADDRESSES } from '../examples/geo.js'
import { buildServer } from '../examples/server.js'
import { canRunBrowser, launch, signInToExample, type Device } from './browser-helper.js'

/**
 * "Was this you?" on the example's devices page, in a real browser: alice
 * signs in on her phone (390 px wide), then on a laptop from an address in
 * Paris, a device and a country she never used. The phone is asked about the
 * laptop; "No" signs the laptop out, "Yes" clears the question. Needs
 * Debian's Chromium (or CHROMIUM_PATH); without it the test skips loudly,
 * except on CI, where it fails.
 */
const SCREENSHOT = join(__dirname, '..', 'docs', 'img', 'was-this-you.png')
const PHONE_WIDTH = 390
// Two runs of two browser devices each, on a shared machine: more than tap's two minutes per file.
t.setTimeout(300_000)

const PHONE: Device = {
  userAgent: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  hints: { 'sec-ch-ua': '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"' },
  name: 'Chrome on Android'
}
const LAPTOP: Device = {
  userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
  hints: { 'sec-ch-ua': '"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Windows"', 'x-forwarded-for': DEMO_ADDRESSES.paris },
  name: 'Edge on Windows'
}

async function signIn (browser: Browser, base: string, device: Device, viewport: { width: number, height: number }): Promise<Page> {
  const { page } = await signInToExample(browser, base, device, { viewport })
  await page.locator('#devices').waitFor({ state: 'visible' })
  return page
}

/** The example, a browser, alice's phone and then her laptop (flagged: a new device, from a new country). */
async function twoDevices (t: Test): Promise<{ app: FastifyInstance, phone: Page, laptop: Page }> {
  const app = await buildServer({ logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const browser = await launch(t)
  const phone = await signIn(browser, base, PHONE, { width: PHONE_WIDTH, height: 844 })
  const laptop = await signIn(browser, base, LAPTOP, { width: 900, height: 700 })
  await phone.reload()
  await phone.locator('#devices').waitFor({ state: 'visible' })
  return { app, phone, laptop }
}

if (canRunBrowser('the browser test')) {
  t.test('the phone is asked "Was this you?" about the laptop; "No" signs the laptop out', async (t) => {
    const { app, phone, laptop } = await twoDevices(t)

    const notice = phone.locator('#alert-list .notice')
    await notice.waitFor()
    t.equal(await notice.count(), 1, 'one question, about the laptop')
    t.match(await notice.textContent(), `Was this you? ${LAPTOP.name} signed in to your account (new device, new location).`)
    t.match(await notice.locator('.meta').textContent(), 'Paris, FR')
    t.equal(await laptop.locator('#alert-list .notice').count(), 0, 'the laptop is not asked about the phone, which nobody doubts')
    t.equal(await laptop.locator('#alert-list').isHidden(), true)

    // The details of the laptop, on the phone.
    const item = phone.locator('.device', { hasText: LAPTOP.name })
    await item.getByText('Details').click()
    const details = await item.locator('dl').innerText()
    for (const shown of ['desktop', 'Edge 131', 'Windows', 'Paris, FR', DEMO_ADDRESSES.paris, 'Signed in with\npassword', 'Renewed\nnot yet', 'First seen', 'Last seen']) t.match(details, shown, `details show ${shown}`)

    // Usable at phone width: nothing wider than the screen, both answers on screen.
    t.ok(await phone.evaluate('document.documentElement.scrollWidth') as number <= PHONE_WIDTH, 'no horizontal scrolling at 390 px')
    for (const name of ['Yes, it was me', 'No, sign it out']) {
      const box = await notice.getByRole('button', { name }).boundingBox()
      t.ok(box !== null && box.x >= 0 && box.x + box.width <= PHONE_WIDTH, `"${name}" fits the screen`)
    }
    await phone.screenshot({ path: SCREENSHOT, fullPage: true })

    // The laptop's own flags: shown once, then acknowledged.
    t.same(await laptop.locator('.device', { hasText: LAPTOP.name }).locator('.badge.warn').allTextContents(), ['New device', 'New location'], 'the laptop shows its own flags once')
    await laptop.reload()
    await laptop.locator('#devices').waitFor({ state: 'visible' })
    t.equal(await laptop.locator('.device', { hasText: LAPTOP.name }).locator('.badge.warn').count(), 0, '... and not again')
    t.same((await app.sessions.alerts('user-alice')).map((alert) => alert.session.device?.name), [LAPTOP.name], 'while the question to the phone stays')

    await notice.getByRole('button', { name: 'No, sign it out' }).click()
    await notice.waitFor({ state: 'detached' })
    t.equal(await phone.locator('#device-list .device').count(), 1, 'the laptop is gone from the list')
    const activity = await phone.locator('#history-list li .what').allTextContents()
    t.same(activity.slice(0, 2), ['Signed out after you said it was not you', 'You said a sign-in was not you'], activity.join(' | '))

    // The laptop's next action finds its session gone (its refresh token too) and lands on the sign-in form.
    await laptop.getByRole('button', { name: 'Sign out of all other devices' }).click()
    await laptop.locator('#login').waitFor({ state: 'visible' })
    t.match(await laptop.locator('#login-error').textContent(), 'signed out')
    t.same((await app.sessions.list('user-alice')).map((session) => session.device?.name), [PHONE.name])
  })

  t.test('"Yes, it was me" clears the question and the laptop\'s flags', async (t) => {
    const { app, phone, laptop } = await twoDevices(t)
    const notice = phone.locator('#alert-list .notice')
    await notice.waitFor()
    t.same(await phone.locator('.device', { hasText: LAPTOP.name }).locator('.badge.warn').allTextContents(), ['New device', 'New location'])
    await notice.getByRole('button', { name: 'Yes, it was me' }).click()
    await notice.waitFor({ state: 'detached' })
    t.equal(await phone.locator('#alert-list').isHidden(), true, 'no question left')
    t.equal(await phone.locator('.device', { hasText: LAPTOP.name }).locator('.badge.warn').count(), 0, 'the laptop carries no flag any more')
    t.equal(await phone.locator('#device-list .device').count(), 2, 'and stays signed in')
    t.equal((await phone.locator('#history-list li .what').allTextContents())[0], 'You confirmed a new sign-in')
    const sessions = await app.sessions.list('user-alice')
    t.ok(sessions.every((session) => session.flags === undefined), 'no session is flagged')
    await laptop.reload()
    await laptop.locator('#devices').waitFor({ state: 'visible' })
    t.equal(await laptop.locator('#device-list .device').count(), 2, 'the laptop keeps working')
  })
}
