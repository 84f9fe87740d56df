// The "Your devices" page: plain ES module, no build step. The access token
// lives in memory only; the fingerprint and refresh token are HttpOnly cookies
// this script never sees. On a 401 it refreshes once, then falls back to login.

const $ = (selector) => document.querySelector(selector)
let accessToken = null

const ICONS = {
  desktop: '<path d="M3 4h18v12H3zM8 20h8M12 16v4"/>',
  mobile: '<path d="M7 2h10v20H7zM11 18h2"/>',
  tablet: '<path d="M4 3h16v18H4zM11 18h2"/>',
  bot: '<path d="M5 8h14v11H5zM12 8V4M9 13h.01M15 13h.01"/>',
  unknown: '<path d="M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM9.5 9a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.7M12 17h.01"/>'
}

// The anomaly flags a session can carry, as a person would say them.
const FLAGS = {
  new_device: 'New device',
  new_country: 'New location',
  ip_change: 'New network',
  device_change: 'Device changed',
  impossible_travel: 'Unusual location',
  too_many_ips: 'Many networks',
  too_many_countries: 'Many countries',
  login_burst: 'Many sign-ins',
  challenge: 'Awaiting verification'
}

// Sign-in methods (the amr claim, RFC 8176), as a person would say them.
const METHODS = { pwd: 'password', otp: 'one-time code', mfa: 'two factors', hwk: 'security key', sms: 'text message', face: 'face', fpt: 'fingerprint' }

// A login-history entry, as a person would say it.
const REASONS = { user: 'by you', admin: 'by an administrator', limit: 'to make room for a new device', regenerate: 'renewed', reuse: 'after a stolen refresh token was detected', 'password-change': 'after a password change', anomaly: 'after unusual activity', 'not-me': 'after you said it was not you' }
function describeEntry (entry) {
  const detail = entry.detail ?? {}
  switch (entry.type) {
    case 'session.created': return 'Signed in'
    case 'session.revoked': return `Signed out ${REASONS[detail.reason] ?? ''}`.trim()
    case 'session.evicted': return 'Signed out (the server was full)'
    case 'refresh.reuse_detected': return 'A stolen refresh token was used'
    case 'login.failed': return 'Wrong password'
    case 'login.locked': return 'Sign-in blocked after repeated failures'
    case 'anomaly.detected': return `${FLAGS[detail.rule] ?? detail.rule}: ${detail.decision === 'revoke' ? 'sign-in refused' : detail.decision === 'challenge' ? 'verification asked' : 'flagged'}`
    case 'challenge.completed': return 'Verification completed'
    case 'alert.answered': return detail.answer === 'yes' ? 'You confirmed a new sign-in' : 'You said a sign-in was not you'
    case 'device.remembered': return 'This device is remembered'
    case 'device.forgotten': return detail.scope === 'all' ? 'Every remembered device forgotten' : 'A remembered device forgotten'
    default: return entry.type
  }
}

function historyItem (entry) {
  const item = document.createElement('li')
  const what = document.createElement('span')
  what.className = 'what'
  what.textContent = describeEntry(entry)
  const meta = document.createElement('span')
  meta.className = 'meta'
  meta.textContent = [entry.device?.name, entry.location ? where(entry) : entry.ip, ago(new Date(entry.time).toISOString())].filter(Boolean).join(' · ')
  item.append(what, meta)
  return item
}

function show (id) {
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== id
}

function ago (iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (seconds < 60) return 'just now'
  const units = [['day', 86400], ['hour', 3600], ['minute', 60]]
  for (const [unit, size] of units) {
    if (seconds >= size) {
      const n = Math.floor(seconds / size)
      return `${n} ${unit}${n === 1 ? '' : 's'} ago`
    }
  }
}

function where (session) {
  const place = session.location && [session.location.city, session.location.country].filter(Boolean).join(', ')
  return place || (session.ip ? `IP ${session.ip}` : 'Location unknown')
}

/** Calls the API with the access token; on 401, refreshes once and retries. */
async function api (method, url, body) {
  const send = () => fetch(url, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
    body: body ? JSON.stringify(body) : undefined
  })
  let response = await send()
  if (response.status === 401 && await stepUpDue(response)) throw new StepUpDue()
  if (response.status === 401 && await refresh()) response = await send()
  if (response.status === 401) throw new SignedOut()
  return response
}

class SignedOut extends Error {}
// The session must pass its one-time code first (the server prints it to its log).
class StepUpDue extends Error {}

async function stepUpDue (response) {
  return (await response.clone().json().catch(() => ({}))).code === 'FST_SESSION_GUARD_STEP_UP_REQUIRED'
}

async function refresh () {
  const response = await fetch('/refresh', { method: 'POST', headers: { 'x-requested-with': 'fetch' } })
  if (!response.ok) {
    accessToken = null
    return false
  }
  accessToken = (await response.json()).accessToken
  return true
}

function deviceItem (session, action) {
  const item = document.createElement('li')
  item.className = 'device'
  item.dataset.sessionId = session.id
  const type = session.device?.type ?? 'unknown'
  item.innerHTML = `
    <span class="icon" title="${type}"><svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${ICONS[type] ?? ICONS.unknown}</svg></span>
    <div><div class="name"><span class="label"></span></div><div class="meta"></div></div>`
  item.querySelector('.label').textContent = session.device?.name ?? 'Unknown device'
  if (session.isCurrent) item.querySelector('.name').insertAdjacentHTML('beforeend', '<span class="badge">This device</span>')
  for (const flag of shownFlags(session)) {
    const note = document.createElement('span')
    note.className = 'badge warn'
    note.textContent = FLAGS[flag] ?? flag
    item.querySelector('.name').append(note)
  }
  // Two sessions of one browser differ by when they were signed in.
  item.querySelector('.meta').textContent = `${where(session)} · ${session.isCurrent ? 'active now' : `last active ${ago(session.lastActiveAt)}`} · signed in ${ago(session.createdAt)}`
  item.querySelector('.meta').after(details(session))
  if (action) item.append(action)
  return item
}

/**
 * The flags a device shows. Another session's stay until someone answers "Was this you?" about it.
 * This device's own are shown once, then acknowledged in this browser: the server keeps them, since
 * a doubted session must not be able to clear the question its user's other devices are asked.
 */
function shownFlags (session) {
  const flags = session.flags ?? []
  if (!session.isCurrent || flags.length === 0) return flags
  const key = `seen-flags:${session.id}`
  const seen = new Set((localStorage.getItem(key) ?? '').split(' '))
  localStorage.setItem(key, flags.join(' '))
  return flags.filter((flag) => !seen.has(flag))
}

/** Everything the session knows about its device, place and times, folded away. */
function details (session) {
  const box = document.createElement('details')
  box.className = 'more'
  box.innerHTML = '<summary>Details</summary><dl></dl>'
  const device = session.device ?? {}
  const version = (name, number) => name && [name, number].filter(Boolean).join(' ')
  const rows = [
    ['Device', [device.model, device.type].filter(Boolean).join(' · ')],
    ['Browser', version(device.browser, device.browserVersion)],
    ['System', version(device.os, device.osVersion)],
    ['Location', session.location && [session.location.city, session.location.country].filter(Boolean).join(', ')],
    ['IP address', session.ip],
    ['Signed in with', session.authMethods?.map((method) => METHODS[method] ?? method).join(' and ')],
    ['First seen', new Date(session.createdAt).toLocaleString()],
    ['Last seen', new Date(session.lastActiveAt).toLocaleString()],
    ['Renewed', session.renewals > 0 ? `${session.renewals} time${session.renewals === 1 ? '' : 's'}` : 'not yet'],
    ['Stays signed in', session.remembered ? 'yes (remembered)' : 'until the browser closes']
  ]
  for (const [term, value] of rows) {
    if (!value) continue
    const dt = document.createElement('dt')
    dt.textContent = term
    const dd = document.createElement('dd')
    dd.textContent = value
    box.querySelector('dl').append(dt, dd)
  }
  return box
}

/** A revoke asks first: the button turns into "Sign out?" with Sign out and Cancel. */
function confirmRevoke (session) {
  const box = document.createElement('div')
  box.className = 'confirm'
  const ask = button('Revoke', 'danger', async () => {
    const question = document.createElement('span')
    question.className = 'question'
    question.textContent = `Sign out ${session.device?.name ?? 'this device'}?`
    box.replaceChildren(question, button('Sign out', 'danger solid', async () => {
      await api('DELETE', `/sessions/${encodeURIComponent(session.id)}`)
      await renderDevices()
    }), button('Cancel', 'secondary', async () => { box.replaceChildren(ask) }))
  })
  box.append(ask)
  return box
}

/** A "Was this you?" notice about another session, with its two answers. */
function notice ({ session }) {
  const item = document.createElement('li')
  item.className = 'notice'
  item.dataset.sessionId = session.id
  item.innerHTML = '<div><strong>Was this you?</strong> <span class="text"></span><div class="meta"></div></div><div class="answers"></div>'
  const why = (session.flags ?? []).map((flag) => (FLAGS[flag] ?? flag).toLowerCase()).join(', ')
  item.querySelector('.text').textContent = `${session.device?.name ?? 'An unknown device'} signed in to your account (${why}).`
  item.querySelector('.meta').textContent = `${where(session)} · ${ago(session.createdAt)}`
  const answer = (value) => async () => {
    const response = await api('POST', `/sessions/alerts/${encodeURIComponent(session.id)}`, { answer: value })
    if (!response.ok) item.querySelector('.meta').textContent = (await response.json()).message ?? 'That did not work'
    else await renderDevices()
  }
  item.querySelector('.answers').append(button('Yes, it was me', 'secondary', answer('yes')), button('No, sign it out', 'danger solid', answer('no')))
  return item
}

function button (label, className, onClick) {
  const element = document.createElement('button')
  element.type = 'button'
  element.className = className
  element.textContent = label
  element.addEventListener('click', async () => {
    element.disabled = true
    try { await onClick() } catch (err) { handle(err) } finally { element.disabled = false }
  })
  return element
}

async function renderDevices () {
  const response = await api('GET', '/sessions')
  const { sessions } = await response.json()
  const me = await (await api('GET', '/me')).json()
  $('#who').textContent = me.user.name
  $('#device-list').replaceChildren(...sessions.map((session) => deviceItem(session, session.isCurrent ? null : confirmRevoke(session))))
  const { alerts } = await (await api('GET', '/sessions/alerts')).json()
  $('#alert-list').replaceChildren(...alerts.map(notice))
  $('#alert-list').hidden = alerts.length === 0
  $('#revoke-others').disabled = sessions.length < 2
  const history = await api('GET', '/sessions/history?limit=10')
  $('#history-list').replaceChildren(...(history.ok ? (await history.json()).entries.map(historyItem) : []))
  show('devices')
}

function renderLimit ({ sessions, ticket }) {
  $('#limit-list').replaceChildren(...sessions.map((session) => deviceItem(session, button('Sign out and continue', 'danger', async () => {
    const response = await fetch('/sessions/resolve-limit', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticket, revoke: session.id }) })
    if (!response.ok) return showLogin('That took too long: please sign in again.')
    accessToken = (await response.json()).accessToken
    await renderDevices()
  }))))
  $('#limit-some').hidden = sessions.length === 0
  $('#limit-none').hidden = sessions.length > 0
  show('limit')
}

function showLogin (message = '') {
  accessToken = null
  $('#login-error').textContent = message
  show('login')
}

function handle (err) {
  if (err instanceof SignedOut) return showLogin('You were signed out.')
  if (err instanceof StepUpDue) return show('step-up')
  console.error(err)
  showLogin('Something went wrong. Please sign in again.')
}

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const response = await fetch('/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: form.get('username'), password: form.get('password'), remember: form.get('remember') === 'on' })
  })
  const body = await response.json()
  if (response.status === 409 && body.ticket) return renderLimit(body)
  if (!response.ok) return showLogin(body.message ?? 'Sign-in failed')
  accessToken = body.accessToken
  event.target.reset()
  await renderDevices().catch(handle)
})

$('#step-up-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const response = await api('POST', '/step-up', { code: new FormData(event.target).get('code') }).catch(handle)
  if (response === undefined) return
  if (!response.ok) {
    $('#step-up-error').textContent = (await response.json()).message ?? 'That did not work'
    return
  }
  event.target.reset()
  $('#step-up-error').textContent = ''
  await renderDevices().catch(handle)
})

$('#step-up-logout').addEventListener('click', async () => {
  await api('POST', '/logout').catch(() => {})
  showLogin()
})

$('#limit-back').addEventListener('click', () => showLogin())

$('#revoke-others').addEventListener('click', async () => {
  await api('POST', '/sessions/revoke-others').then(renderDevices).catch(handle)
})

$('#logout').addEventListener('click', async () => {
  await api('POST', '/logout').catch(() => {})
  showLogin()
})

// A reload loses the in-memory token: the refresh cookie brings it back.
if (await refresh()) await renderDevices().catch(handle)
else showLogin()
