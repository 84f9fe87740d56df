import { existsSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import t, { type Test } from 'tap'

/** Debian's Chromium, or CHROMIUM_PATH. */
export const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Whether the browser tests can run: Chromium is there, and so is whatever
 * else `missing` names. When not, the file fails on CI and skips loudly
 * elsewhere, and this answers false.
 */
export function canRunBrowser (what: string, missing: () => string | undefined = () => undefined): boolean {
  const absent = existsSync(executablePath) ? missing() : `Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`
  if (absent === undefined) return true
  if (process.env.CI !== undefined) {
    t.fail(`CI is set but no ${absent}`)
  } else {
    console.error(`\n!!! SKIPPING ${what}: no ${absent} !!!\n`)
    t.plan(0, `no ${absent}`)
  }
  return false
}

/** A headless Chromium, closed when the test ends. */
export async function launch (t: Test, args: string[] = []): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', ...args]
  })
  t.teardown(() => browser.close())
  return browser
}

/** A device of the example as the browser shows it: who it claims to be, and the name the devices page gives it. */
export interface Device {
  userAgent: string
  hints: Record<string, string>
  name: string
}

/** Signs in on the example's page as `username` in a new context (a new device); the page is left where the sign-in led. */
export async function signInToExample (browser: Browser, base: string, device: Device, options: { username?: string, viewport?: { width: number, height: number }, headers?: Record<string, string> } = {}): Promise<{ context: BrowserContext, page: Page }> {
  const context = await browser.newContext({ userAgent: device.userAgent, extraHTTPHeaders: { ...device.hints, ...options.headers }, viewport: options.viewport ?? { width: 760, height: 560 }, deviceScaleFactor: 1 })
  const page = await context.newPage()
  await page.goto(base)
  await page.getByLabel('Username').fill(options.username ?? 'alice')
  await page.getByLabel('Password').fill('demo-password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  return { context, page }
}

/** What the page's script got back from one call. */
export interface Answer { status: number, body: string }

/** A `fetch` made by the page's own script, with its cookies (`credentials: 'include'`). */
export async function call (page: Page, url: string, init: { method?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  return await page.evaluate(async ({ url, init }) => {
    const response = await fetch(url, { ...init, credentials: 'include' })
    return { status: response.status, body: await response.text() }
  }, { url, init })
}
