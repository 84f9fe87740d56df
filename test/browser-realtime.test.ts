import type { Page } from 'playwright-core'
import t from 'tap'
import { canRunBrowser, launch } from './browser-helper.js'
import { realtime } from './realtime-helper.js'

/**
 * A WebSocket and an EventSource opened by Chromium from a page of the app:
 * the token in `Sec-WebSocket-Protocol` and in the query, the fingerprint
 * cookie sent by the browser itself. Another device of the same user signs
 * everyone else out; the server closes the socket and ends the stream on its
 * next check, and the EventSource's reconnection is refused. Needs Debian's
 * Chromium (or CHROMIUM_PATH); without it the test skips loudly, except on CI.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>live</title><body><script>
window.log = []
window.start = async () => {
  const response = await fetch('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'alice' }) })
  const { accessToken } = await response.json()
  window.accessToken = accessToken
  const socket = new WebSocket('ws://' + location.host + '/ws', ['session-guard', accessToken])
  socket.onmessage = (event) => window.log.push('ws message: ' + event.data)
  socket.onclose = (event) => window.log.push('ws closed: ' + event.code + ' ' + event.reason)
  const stream = new EventSource('/events?access_token=' + encodeURIComponent(accessToken))
  stream.onmessage = (event) => window.log.push('sse message: ' + event.data)
  stream.addEventListener('end', (event) => window.log.push('sse end: ' + event.data))
  stream.onerror = () => { if (stream.readyState === EventSource.CLOSED) window.log.push('sse closed') }
}
</script>`

if (canRunBrowser('the browser test')) {
  t.test('Chromium: a revoked session closes its WebSocket and ends its event stream', async (t) => {
    const { base, app } = await realtime(t, { routes: { prefix: '/sessions' } }, 100, (app) => {
      app.get('/', async (_request, reply) => await reply.type('text/html').send(PAGE))
    })
    const browser = await launch(t)

    async function device (): Promise<Page> {
      const page = await (await browser.newContext()).newPage()
      await page.goto(base)
      return page
    }
    // The page's own script runs in the browser: its expressions are strings here (no DOM types in the tests).
    const log = async (page: Page): Promise<string[]> => await page.evaluate('window.log') as string[]

    const laptop = await device()
    await laptop.evaluate('window.start()')
    await laptop.waitForFunction('window.log.length === 2')
    t.same((await log(laptop)).sort(), ['sse message: hello alice', 'ws message: hello alice'], 'both opened with the token and the fingerprint cookie')
    t.equal((await app.sessions.list('alice')).length, 1, 'one session, the laptop\'s')

    // The phone signs every other device out, through the plugin's own route.
    const phone = await device()
    const revoked = await phone.evaluate(`(async () => {
      const login = await (await fetch('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"userId":"alice"}' })).json()
      const response = await fetch('/sessions/revoke-others', { method: 'POST', headers: { authorization: 'Bearer ' + login.accessToken } })
      return await response.json()
    })()`)
    t.same(revoked, { revoked: 1 }, 'the phone revoked the laptop')

    await laptop.waitForFunction("window.log.some((line) => line.startsWith('ws closed')) && window.log.includes('sse closed')", undefined, { timeout: 10_000 })
    const lines = await log(laptop)
    t.ok(lines.includes('ws closed: 4401 session revoked'), 'the server closed the socket with 4401')
    t.ok(lines.includes('sse end: revoked'), 'the server ended the stream')
    t.ok(lines.includes('sse closed'), 'the reconnection was refused: the EventSource gave up')
    t.equal((await app.sessions.list('alice')).length, 1, 'only the phone is left')
  })
}
