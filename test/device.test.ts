import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { createDeviceParser, type DeviceHeaders, type DeviceInfo, MAX_HINT_LENGTH, MAX_USER_AGENT_LENGTH, parseDevice } from '../lib/devices/device.js'

interface Expected {
  type: DeviceInfo['type']
  name: string
  browser?: [string | undefined, string | undefined]
  os?: [string | undefined, string | undefined]
  model?: string | undefined
}

function check (t: Test, headers: DeviceHeaders, expected: Expected): DeviceInfo {
  const device = parseDevice(headers)
  t.equal(device.type, expected.type, 'type')
  t.equal(device.name, expected.name, 'name')
  if (expected.browser !== undefined) t.same([device.browser.name, device.browser.version], expected.browser, 'browser')
  if (expected.os !== undefined) t.same([device.os.name, device.os.version], expected.os, 'os')
  if ('model' in expected) t.equal(device.model, expected.model, 'model')
  return device
}

const ua = (value: string): DeviceHeaders => ({ 'user-agent': value })

// Real user agents as the browsers send them (Chromium ones in their reduced form).
const BROWSERS: Array<[string, string, Expected]> = [
  ['Chrome on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    { type: 'desktop', name: 'Chrome on Windows', browser: ['Chrome', '131.0.0.0'], os: ['Windows', '10'], model: undefined }],
  ['Edge on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
    { type: 'desktop', name: 'Edge on Windows', browser: ['Edge', '131.0.0.0'] }],
  ['Firefox on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
    { type: 'desktop', name: 'Firefox on Windows', browser: ['Firefox', '133.0'], os: ['Windows', '10'] }],
  ['Opera on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0',
    { type: 'desktop', name: 'Opera on Windows', browser: ['Opera', '115.0.0.0'] }],
  ['Internet Explorer 11 on Windows 7',
    'Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko',
    { type: 'desktop', name: 'IE on Windows', browser: ['IE', '11.0'], os: ['Windows', '7'] }],
  ['Safari on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
    { type: 'desktop', name: 'Safari on macOS', browser: ['Safari', '18.1'], os: ['macOS', '10.15.7'] }],
  ['Chrome on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    { type: 'desktop', name: 'Chrome on macOS' }],
  ['Edge on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
    { type: 'desktop', name: 'Edge on macOS', browser: ['Edge', '131.0.0.0'], os: ['macOS', '10.15.7'] }],
  ['Firefox on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0',
    { type: 'desktop', name: 'Firefox on macOS', os: ['macOS', '10.15'] }],
  ['Chrome on Linux',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    { type: 'desktop', name: 'Chrome on Linux', os: ['Linux', undefined] }],
  ['Firefox on Ubuntu',
    'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    { type: 'desktop', name: 'Firefox on Ubuntu' }],
  ['Firefox ESR on Linux',
    'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
    { type: 'desktop', name: 'Firefox on Linux', browser: ['Firefox', '128.0'] }],
  ['Chrome on ChromeOS',
    'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    { type: 'desktop', name: 'Chrome on ChromeOS', os: ['ChromeOS', '14541.0.0'] }],
  ['Chrome on an Android phone (reduced UA)',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    { type: 'mobile', name: 'Chrome on Android', os: ['Android', '10'], model: undefined }],
  ['Chrome on an Android tablet (reduced UA)',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    { type: 'tablet', name: 'Chrome on Android' }],
  ['Samsung Internet on a Galaxy phone',
    'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36',
    { type: 'mobile', name: 'Samsung Internet on Android', browser: ['Samsung Internet', '26.0'], model: 'SM-S918B' }],
  ['Samsung Internet on a Galaxy tablet',
    'Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Safari/537.36',
    { type: 'tablet', name: 'Samsung Internet on Android', model: 'SM-X700' }],
  ['Firefox on Android',
    'Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0',
    { type: 'mobile', name: 'Firefox on Android', browser: ['Firefox', '133.0'], os: ['Android', '14'] }],
  ['Opera on Android',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0',
    { type: 'mobile', name: 'Opera on Android' }],
  ['Edge on Android',
    'Mozilla/5.0 (Linux; Android 14; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36 EdgA/131.0.2903.87',
    { type: 'mobile', name: 'Edge on Android', browser: ['Edge', '131.0.2903.87'] }],
  ['Android WebView',
    'Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36',
    { type: 'mobile', name: 'Android WebView on Android', model: 'Pixel 8' }],
  ['Safari on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
    { type: 'mobile', name: 'Safari on iPhone', browser: ['Safari', '18.1'], os: ['iOS', '18.1'], model: 'iPhone' }],
  ['Chrome on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1',
    { type: 'mobile', name: 'Chrome on iPhone', browser: ['Chrome', '131.0.6778.73'] }],
  ['Firefox on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15',
    { type: 'mobile', name: 'Firefox on iPhone' }],
  ['Safari on iPad (mobile UA)',
    'Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1',
    { type: 'tablet', name: 'Safari on iPad', os: ['iOS', '17.6'], model: 'iPad' }],
  ['Safari on iPod touch',
    'Mozilla/5.0 (iPod touch; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6.6 Mobile/15E148 Safari/604.1',
    { type: 'mobile', name: 'Safari on iPod touch' }],
  // iPadOS 13+ asks for desktop sites by default and sends the macOS user agent,
  // and Safari sends no client hints: no header tells it from a Mac.
  ['Safari on iPad in desktop mode (indistinguishable from a Mac)',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
    { type: 'desktop', name: 'Safari on macOS', browser: ['Safari', '17.4'] }],
  ['an app with its own user agent',
    'MyApp/1.2.3 (iPhone; iOS 17.1; Scale/3.00)',
    { type: 'mobile', name: 'MyApp on iPhone', browser: ['MyApp', '1.2.3'], os: ['iOS', '17.1'] }],
  ['an Android phone whose model contains "bot"',
    'Mozilla/5.0 (Linux; Android 9; CUBOT_P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
    { type: 'mobile', name: 'Chrome on Android', model: 'CUBOT_P30' }],
  ['a smart TV',
    'Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36',
    { type: 'unknown', name: 'Safari on Tizen' }],
  ['a browser on an unknown system',
    'Mozilla/5.0 (compatible) Gecko/20100101 Firefox/133.0',
    { type: 'desktop', name: 'Firefox', os: [undefined, undefined] }]
]

t.test('real browsers from the user agent alone', async (t) => {
  for (const [label, value, expected] of BROWSERS) {
    t.test(label, async (t) => { check(t, ua(value), expected) })
  }
})

const BOTS: Array<[string, Expected]> = [
  ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    { type: 'bot', name: 'Googlebot', browser: ['Googlebot', '2.1'], os: [undefined, undefined] }],
  ['Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    { type: 'bot', name: 'Googlebot', os: ['Android', '6.0.1'] }],
  ['Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36',
    { type: 'bot', name: 'bingbot', browser: ['bingbot', '2.0'] }],
  ['Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)', { type: 'bot', name: 'YandexBot' }],
  ['facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)', { type: 'bot', name: 'facebookexternalhit' }],
  ['Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)', { type: 'bot', name: 'Slackbot-LinkExpanding', browser: ['Slackbot-LinkExpanding', undefined] }],
  ['curl/8.5.0', { type: 'bot', name: 'curl', browser: ['curl', '8.5.0'], os: [undefined, undefined] }],
  ['Wget/1.21.4', { type: 'bot', name: 'Wget', browser: ['Wget', '1.21.4'] }],
  ['python-requests/2.32.3', { type: 'bot', name: 'python-requests', browser: ['python-requests', '2.32.3'] }],
  ['Python-urllib/3.12', { type: 'bot', name: 'python-urllib' }],
  ['Go-http-client/2.0', { type: 'bot', name: 'Go-http-client' }],
  ['PostmanRuntime/7.42.0', { type: 'bot', name: 'PostmanRuntime' }],
  ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36',
    { type: 'bot', name: 'HeadlessChrome', os: ['Linux', undefined] }]
]

t.test('robots and scripted clients', async (t) => {
  for (const [value, expected] of BOTS) {
    t.test(expected.name, async (t) => { check(t, ua(value), expected) })
  }
})

// Robots the two hand-written patterns missed, which isbot knows: link previews and uptime checks.
const MISSED_BOTS: Array<[string, Expected]> = [
  ['TelegramBot (like TwitterBot)', { type: 'bot', name: 'TelegramBot', browser: ['TelegramBot', undefined] }],
  ['Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)', { type: 'bot', name: 'Pingdom.com_bot' }],
  ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/61.0.3163.100 Chrome/61.0.3163.100 Safari/537.36 PingdomPageSpeed/1.0 (pingbot/2.0; +http://www.pingdom.com/)',
    { type: 'bot', name: 'pingbot', browser: ['pingbot', '2.0'] }],
  ['WhatsApp/2.23.20.0 A', { type: 'bot', name: 'WhatsApp', browser: ['WhatsApp', '2.23.20.0'] }],
  ['WhatsApp/2.2407.3 i', { type: 'bot', name: 'WhatsApp', browser: ['WhatsApp', '2.2407.3'] }]
]

t.test('link previews and uptime checks are robots too', async (t) => {
  for (const [value, expected] of MISSED_BOTS) {
    t.test(value, async (t) => { check(t, ua(value), expected) })
  }
})

t.test('a client library that apps embed is named, not called a robot', async (t) => {
  check(t, ua('okhttp/4.12.0'), { type: 'unknown', name: 'okhttp', browser: ['okhttp', '4.12.0'] })
  // isbot's rule: a product and version with nothing after them is a script; an app that says more is not.
  check(t, ua('MyApp/1.2.3'), { type: 'bot', name: 'MyApp', browser: ['MyApp', '1.2.3'] })
  check(t, ua('MyApp/4.12.0 (iPhone; iOS 18.1)'), { type: 'mobile', name: 'MyApp on iPhone' })
})

t.test('nothing to go on: one shared unknown device', async (t) => {
  const unknown = check(t, {}, { type: 'unknown', name: 'Unknown device', browser: [undefined, undefined], os: [undefined, undefined], model: undefined })
  t.equal(parseDevice(ua('')), unknown, 'empty user agent')
  t.equal(parseDevice(ua('asdf')), unknown, 'garbage')
  t.equal(parseDevice(ua('Mozilla/5.0')), unknown, 'Mozilla alone is no product')
  t.equal(parseDevice(ua('\u0000\u00ff%%%(((;;;')), unknown, 'control and punctuation characters')
  t.equal(parseDevice({ 'user-agent': ['curl/8.5.0', 'Wget/1.0'] }), unknown, 'an array is not guessed at')
  // No field value may hold a control character: Node's parser refuses one, but not with insecureHTTPParser.
  t.not(parseDevice(ua('curl/8.5.0')), unknown)
  t.equal(parseDevice(ua('curl/8.5.0\u0000')), unknown, 'a user agent with U+0000 is malformed, read as absent')
  t.equal(parseDevice(ua('curl/8.5.0\u007f')), unknown, 'DEL too')
  t.not(parseDevice(ua('curl/8.5.0\t')), unknown, 'a tab may be in a field value')
  t.ok(Object.isFrozen(unknown) && Object.isFrozen(unknown.browser) && Object.isFrozen(unknown.os), 'frozen')
})

t.test('a user agent that names an OS but no browser', async (t) => {
  check(t, ua('Mozilla/5.0 (Windows NT 10.0; Win64; x64)'), { type: 'desktop', name: 'Windows device', browser: [undefined, undefined] })
})

t.test('a huge user agent is cut, parsed, and cached under its first 512 characters', async (t) => {
  const base = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0 '
  const huge = base + 'x'.repeat(100_000)
  const parser = createDeviceParser()
  const device = parser.parse(ua(huge))
  t.equal(device.name, 'Firefox on Windows')
  t.equal(parser.parse(ua(base + 'x'.repeat(MAX_USER_AGENT_LENGTH))), device, 'same first 512 characters, same device')
  const bot = 'curl/8.5.0 ' + 'y'.repeat(1_000_000)
  t.equal(parser.parse(ua(bot)).name, 'curl')
})

const CHROME_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
const CHROME_ANDROID = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36'
const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
const CHROME_BRANDS = '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'

t.test('client hints win over the frozen user agent', async (t) => {
  t.test('Windows 11 behind "Windows NT 10.0", with the full version', async (t) => {
    check(t, {
      'user-agent': CHROME_WINDOWS,
      'sec-ch-ua': CHROME_BRANDS,
      'sec-ch-ua-mobile': '?0',
      'sec-ch-ua-platform': '"Windows"',
      'sec-ch-ua-platform-version': '"15.0.0"',
      'sec-ch-ua-full-version-list': '"Google Chrome";v="131.0.6778.86", "Chromium";v="131.0.6778.86", "Not_A Brand";v="24.0.0.0"'
    }, { type: 'desktop', name: 'Chrome on Windows', browser: ['Chrome', '131.0.6778.86'], os: ['Windows', '11'] })
  })
  t.test('Windows platform versions', async (t) => {
    const versions: Array<[string, string | undefined]> = [
      ['"13.0.0"', '11'], ['"10.0.0"', '10'], ['"1.0.0"', '10'], ['"0.3.0"', '8.1'], ['"0.2.0"', '8'], ['"0.1.0"', '7'],
      ['"0.0.0"', undefined], ['"garbage"', undefined], ['"0"', undefined], ['""', undefined]
    ]
    for (const [hint, version] of versions) {
      const device = parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-platform': '"Windows"', 'sec-ch-ua-platform-version': hint })
      t.equal(device.os.version, version, hint)
    }
  })
  t.test('without the platform version, the frozen "10" is not reported', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': CHROME_BRANDS, 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Windows"' },
      { type: 'desktop', name: 'Chrome on Windows', browser: ['Chrome', '131'], os: ['Windows', undefined] })
  })
  t.test('Edge on macOS Sequoia', async (t) => {
    check(t, {
      'user-agent': CHROME_MAC + ' Edg/131.0.0.0',
      'sec-ch-ua': '"Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
      'sec-ch-ua-mobile': '?0',
      'sec-ch-ua-platform': '"macOS"',
      'sec-ch-ua-platform-version': '"15.1.0"'
    }, { type: 'desktop', name: 'Edge on macOS', browser: ['Edge', '131'], os: ['macOS', '15.1'] })
  })
  t.test('Brave, whose user agent is Chrome\'s', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': '"Brave";v="131", "Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-platform': '"Linux"' },
      { type: 'desktop', name: 'Brave on Linux', browser: ['Brave', '131'], os: ['Linux', undefined] })
  })
  t.test('Vivaldi, which sends only the Chromium brand, keeps its user-agent name', async (t) => {
    check(t, {
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18',
      'sec-ch-ua': '"Chromium";v="131", "Not_A Brand";v="24"',
      'sec-ch-ua-platform': '"Linux"'
    }, { type: 'desktop', name: 'Vivaldi on Linux', browser: ['Vivaldi', '7.0.3495.18'] })
  })
  t.test('a Chromium build with no brand of its own', async (t) => {
    check(t, { 'user-agent': CHROME_MAC, 'sec-ch-ua': '"Chromium";v="131", "Not_A Brand";v="24"', 'sec-ch-ua-platform': '"Chrome OS"' },
      { type: 'desktop', name: 'Chromium on ChromeOS', browser: ['Chromium', '131'] })
  })
  t.test('the real Android phone model and version behind "Android 10; K"', async (t) => {
    check(t, {
      'user-agent': CHROME_ANDROID,
      'sec-ch-ua': CHROME_BRANDS,
      'sec-ch-ua-mobile': '?1',
      'sec-ch-ua-platform': '"Android"',
      'sec-ch-ua-platform-version': '"14.0.0"',
      'sec-ch-ua-model': '"Pixel 8"'
    }, { type: 'mobile', name: 'Chrome on Android', os: ['Android', '14'], model: 'Pixel 8' })
  })
  t.test('an Android tablet says it is not mobile', async (t) => {
    check(t, { 'user-agent': CHROME_ANDROID, 'sec-ch-ua': CHROME_BRANDS, 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Android"', 'sec-ch-ua-model': '"SM-X710"' },
      { type: 'tablet', name: 'Chrome on Android', model: 'SM-X710' })
  })
  t.test('a desktop browser emulating a phone says it is mobile', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': CHROME_BRANDS, 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Windows"' },
      { type: 'mobile', name: 'Chrome on Windows' })
  })
  t.test('Samsung Internet', async (t) => {
    check(t, {
      'user-agent': 'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36',
      'sec-ch-ua': '"Samsung Internet";v="26.0", "Chromium";v="122", "Not(A:Brand";v="24"',
      'sec-ch-ua-mobile': '?1',
      'sec-ch-ua-platform': '"Android"'
    }, { type: 'mobile', name: 'Samsung Internet on Android', browser: ['Samsung Internet', '26.0'], model: 'SM-S918B' })
  })
  t.test('Opera, with the brand after Chromium', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': '"Chromium";v="130", "Opera";v="115", "Not?A_Brand";v="99"' },
      { type: 'desktop', name: 'Opera on Windows', browser: ['Opera', '115'], os: ['Windows', '10'] })
  })
  t.test('hints alone, without a user agent', async (t) => {
    check(t, { 'sec-ch-ua': CHROME_BRANDS, 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Linux"' },
      { type: 'desktop', name: 'Chrome on Linux', browser: ['Chrome', '131'] })
  })
  t.test('headless Chrome is told by its brand', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': '"HeadlessChrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"' },
      { type: 'bot', name: 'HeadlessChrome', browser: ['HeadlessChrome', '131'], os: ['Windows', '10'] })
  })
  t.test('an "Unknown" or empty platform leaves the user agent\'s', async (t) => {
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-platform': '"Unknown"' }, { type: 'desktop', name: 'Chrome on Windows', os: ['Windows', '10'] })
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-platform': '""' }, { type: 'desktop', name: 'Chrome on Windows', os: ['Windows', '10'] })
    check(t, { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-model': '""' }, { type: 'desktop', name: 'Chrome on Windows', model: undefined })
  })
})

t.test('GREASE brands are never taken for the browser', async (t) => {
  const grease = ['Not A(Brand', 'Not)A;Brand', 'Not/A)Brand', 'Not_A Brand', 'Not.A/Brand', 'Not?A_Brand', 'Not;A=Brand', ' Not;A Brand', '(Not(A:Brand', 'Not=A?Brand']
  for (const brand of grease) {
    const quoted = brand.replace(/\\/g, '\\\\')
    const device = parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': `"${quoted}";v="8", "Chromium";v="131"` })
    t.equal(device.browser.name, 'Chromium', brand)
  }
  t.equal(parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': '"Not A(Brand";v="99"' }).browser.name, 'Chrome', 'only GREASE: the user agent decides')
})

t.test('malformed or oversized hints are ignored, never thrown on', async (t) => {
  const malformed = [
    'Chrome;v=131', // not a string
    '"Chrome";v="131"; ', // dangling parameter
    '"Chrome";=1', // empty key
    '"Chrome";v=', // parameter without a value
    '"Chrome" "Edge"', // no comma
    '"Chrome",', // trailing comma
    '"Chr\\ome"', // bad escape
    '"Chrome', // unterminated
    ''
  ]
  for (const value of malformed) {
    const device = parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': value, 'sec-ch-ua-platform': '"Lin' })
    t.equal(device.name, 'Chrome on Windows', JSON.stringify(value))
    t.equal(device.browser.version, '131.0.0.0', 'the user agent\'s version')
  }
  const long = `"${'a'.repeat(MAX_HINT_LENGTH)}";v="1"`
  t.equal(parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua': long }).browser.name, 'Chrome', 'oversized brand list')
  t.equal(parseDevice({ 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-platform': `"${'x'.repeat(MAX_HINT_LENGTH)}"` }).os.name, 'Windows', 'oversized platform')
})

t.test('structured-field details the parser accepts', async (t) => {
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ['"My \\"Quoted\\" Browser";v="1", "Chromium";v="2"', 'My "Quoted" Browser', '1'],
    ['"Back\\\\slash";v="3"', 'Back\\slash', '3'],
    ['"Token";v=42', 'Token', '42'],
    ['"Flagged";x;v="5"', 'Flagged', '5'],
    ['"NoVersion"', 'NoVersion', undefined],
    ['"EmptyVersion";v=""', 'EmptyVersion', undefined],
    // RFC 8941 allows no whitespace before ';': the whole list is malformed and ignored.
    ['"Tabbed" ;v="6"', undefined, undefined],
    ['\t"Tabbed";v="7" ,\t"Chromium";v="7"', 'Tabbed', '7'],
    // A version given as a token reads like a string; a bare flag is no version.
    ['"TokenVersion";v=a1', 'TokenVersion', 'a1'],
    ['"FlagVersion";v', 'FlagVersion', undefined],
    // Items that are not strings are no brands (a token, an inner list), the rest of the list still counts.
    ['Bare;v="1", ("Inner");v="2", "Real";v="3"', 'Real', '3'],
    // A blank name names no brand; spaces around a name or a version are not part of it.
    ['"";v="1", " ";v="2", "Named";v="3"', 'Named', '3'],
    ['" Padded ";v=" 4 "', 'Padded', '4'],
    ['"Blank";v=" "', 'Blank', undefined]
  ]
  for (const [value, name, version] of cases) {
    const device = parseDevice({ 'sec-ch-ua': value, 'sec-ch-ua-platform': '"Linux"' })
    t.same([device.browser.name, device.browser.version], [name, version], value)
  }
})

t.test('a blank hint reads as absent: never an empty browser, system or model name', async (t) => {
  for (const blank of ['""', '" "', '"";v="1"']) {
    for (const name of ['sec-ch-ua', 'sec-ch-ua-full-version-list']) {
      const alone = parseDevice({ [name]: blank })
      t.same([alone.type, alone.name, alone.browser.name], ['unknown', 'Unknown device', undefined], `${name}: ${blank} alone`)
      const firefox = parseDevice({ 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', [name]: blank })
      t.equal(firefox.name, 'Firefox on Linux', `${name}: ${blank} with a user agent`)
    }
  }
  const blanks = { 'user-agent': CHROME_WINDOWS, 'sec-ch-ua-platform': '" "', 'sec-ch-ua-model': '""' }
  const device = parseDevice(blanks)
  t.same([device.name, device.os.name, device.model], ['Chrome on Windows', 'Windows', undefined], 'blank platform and model')
})

t.test('any header values: never throws, always a frozen device of a known type', async (t) => {
  const types = new Set(['desktop', 'mobile', 'tablet', 'bot', 'unknown'])
  const value = fc.oneof(
    fc.string({ maxLength: 600 }),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.constantFrom('?0', '?1', '"Windows"', '"Android"', '"15.0.0"', CHROME_BRANDS, CHROME_WINDOWS),
    fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }),
    fc.constant(undefined)
  )
  const names = ['user-agent', 'sec-ch-ua', 'sec-ch-ua-mobile', 'sec-ch-ua-platform', 'sec-ch-ua-platform-version', 'sec-ch-ua-full-version-list', 'sec-ch-ua-model'] as const
  const headers = fc.record(Object.fromEntries(names.map((name) => [name, value])) as Record<(typeof names)[number], typeof value>, { requiredKeys: [] })
  const parser = createDeviceParser({ cacheSize: 50 })
  fc.assert(fc.property(headers, (h) => {
    const device = parser.parse(h)
    return types.has(device.type) && typeof device.name === 'string' && device.name.length > 0 &&
      Object.isFrozen(device) && Object.isFrozen(device.browser) && Object.isFrozen(device.os)
  }), { numRuns: 500 })
  t.ok(parser.size <= 50, 'the cache stayed bounded')
})

t.test('interning: same headers, same frozen object', async (t) => {
  const headers = { 'user-agent': CHROME_ANDROID, 'sec-ch-ua': CHROME_BRANDS, 'sec-ch-ua-mobile': '?1', 'sec-ch-ua-platform': '"Android"' }
  const a = parseDevice(headers)
  const b = parseDevice({ ...headers, accept: 'text/html', cookie: 'x=1' })
  t.equal(a, b, 'unrelated headers do not matter')
  t.ok(Object.isFrozen(a) && Object.isFrozen(a.browser) && Object.isFrozen(a.os))
  t.throws(() => { (a as { name: string }).name = 'changed' }, TypeError, 'cannot be changed (strict mode)')
  t.not(parseDevice({ ...headers, 'sec-ch-ua-mobile': '?0' }), a, 'a different hint is a different device')

  const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
  // A fresh string each time, as every request's header is.
  const fresh = (): string => [firefox].join('')
  t.equal(parseDevice(ua(fresh())), parseDevice(ua(fresh())), 'no hints: keyed by the user agent alone')
})

t.test('the cache is bounded', async (t) => {
  const parser = createDeviceParser({ cacheSize: 3 })
  const first = parser.parse(ua('curl/1.0'))
  t.equal(parser.parse(ua('curl/1.0')), first)
  for (let i = 2; i < 1000; i++) parser.parse(ua(`curl/${i}.0`))
  t.equal(parser.size, 3, 'never more entries than cacheSize')
  const again = parser.parse(ua('curl/1.0'))
  t.not(again, first, 'evicted, parsed anew')
  t.same(again, first, 'to the same value')

  const shared = createDeviceParser()
  for (let i = 0; i < 100; i++) shared.parse(ua(`curl/${i}`))
  t.equal(shared.size, 100)
  t.equal(parser.parse({}), parser.parse(ua('')), 'the unknown device takes no cache entry')
  t.equal(parser.size, 3)
})

t.test('cacheSize is checked', async (t) => {
  for (const cacheSize of [0, -1, 1.5, Number.NaN, Infinity]) {
    t.throws(() => createDeviceParser({ cacheSize }), { code: 'FST_SESSION_GUARD_INVALID_OPTION', message: /"cacheSize": must be a positive integer/ }, String(cacheSize))
  }
})

interface FixtureEntry { ua: string, weight: number, type: DeviceInfo['type'], hints?: Record<string, string> }

t.test('every user agent of the benchmark fixture parses to the type it is listed with', async (t) => {
  const entries = JSON.parse(readFileSync(join(__dirname, '..', 'bench', 'fixtures', 'user-agents.json'), 'utf8')) as FixtureEntry[]
  t.ok(entries.length >= 300, `${entries.length} entries`)
  const parser = createDeviceParser({ cacheSize: 10_000 })
  const wrong: string[] = []
  for (const entry of entries) {
    if (!Number.isSafeInteger(entry.weight) || entry.weight < 1) wrong.push(`${entry.ua}: weight ${entry.weight}`)
    const device = parser.parse({ 'user-agent': entry.ua, ...entry.hints })
    if (device.type !== entry.type) wrong.push(`${entry.ua} → ${device.type}, listed as ${entry.type}`)
    if (entry.type !== 'bot' && entry.type !== 'unknown' && device.browser.name === undefined) wrong.push(`${entry.ua}: no browser`)
  }
  t.same(wrong, [], 'every entry as listed')
  t.ok(entries.filter((entry) => entry.type !== 'bot').length >= 250, 'mostly browsers')
})
