// The admin dashboard: plain ES module, no build step. Every figure comes from
// the plugin's admin routes (the `admin` option, mounted at /admin/dashboard),
// which answer only a signed-in admin. The access token lives in memory; a
// page load gets one from the refresh cookie, as the devices page does.
import { barChart, clockTime, lineChart, shareChart } from './charts.js'

const API = '/admin/dashboard'
const $ = (selector) => document.querySelector(selector)
const COLORS = { blue: '#2f6feb', orange: '#e8590c', red: '#c92a2a', green: '#2b8a3e', violet: '#862e9c' }
let accessToken = null

async function refresh () {
  const response = await fetch('/refresh', { method: 'POST', headers: { 'x-requested-with': 'fetch' } })
  accessToken = response.ok ? (await response.json()).accessToken : null
  return response.ok
}

/** Calls an admin route; on 401, refreshes once and retries. */
async function api (method, url) {
  const send = () => fetch(url, { method, headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {} })
  let response = await send()
  if (response.status === 401 && await refresh()) response = await send()
  if (response.status === 401) throw new Denied('You are not signed in. Sign in on the devices page first.')
  if (response.status === 403) throw new Denied('This page is for administrators only.')
  return response
}

class Denied extends Error {}

function deny (err) {
  if (!(err instanceof Denied)) throw err
  $('#dashboard').hidden = true
  $('#denied').hidden = false
  // One line: `.notice` is a grid, and each bare text node beside the link would be a row of its own.
  const line = document.createElement('span')
  const link = document.createElement('a')
  link.href = '/'
  link.textContent = 'Go to your devices'
  line.append(`${err.message} `, link, '.')
  $('#denied-text').replaceChildren(line)
  $('#status').textContent = ''
}

const DURATION_LABELS = ['1 min', '5 min', '15 min', '1 h', '4 h', '12 h', '1 day', '7 days', '> 7 days']

function tile (label, value, id) {
  const item = document.createElement('div')
  item.className = 'tile'
  item.dataset.tile = id
  item.innerHTML = '<span class="value"></span><span class="label"></span>'
  item.querySelector('.value').textContent = String(value)
  item.querySelector('.label').textContent = label
  return item
}

async function renderOverview () {
  const { generatedAt, live, timeline } = await (await api('GET', `${API}/overview`)).json()
  const sum = (key) => timeline.points.reduce((total, point) => total + point[key], 0)
  const minutes = Math.round(timeline.intervalMs * timeline.points.length / 60_000)
  const window = minutes >= 120 ? `${Math.round(minutes / 60)} h` : `${minutes} min`
  $('#status').textContent = `Updated ${clockTime(Date.parse(generatedAt))} · time series: the last ${window} on this server`
  $('#tiles').replaceChildren(
    tile('Live sessions', live.sessions, 'sessions'),
    tile('Users signed in', live.users, 'users'),
    tile(`Sign-ins (${window})`, sum('signIns'), 'signIns'),
    tile(`Anomalies (${window})`, sum('anomalies'), 'anomalies'),
    tile(`Lockouts (${window})`, sum('lockouts'), 'lockouts')
  )

  // The window may reach back before this server started: begin at its first figure (at least 15 points shown).
  const used = timeline.points.findIndex((point) => point.activeSessions !== null || point.signIns + point.failedLogins + point.lockouts + point.anomalies + point.ended > 0)
  const points = timeline.points.slice(Math.max(0, Math.min(used === -1 ? Infinity : used, timeline.points.length - 15)))
  const times = points.map((point) => point.start)
  lineChart($('#chart-active'), {
    name: 'active-sessions',
    title: 'Active sessions over time',
    times,
    yTitle: 'Sessions',
    series: [{ name: 'Active sessions', color: COLORS.blue, values: points.map((point) => point.activeSessions) }]
  })
  lineChart($('#chart-security'), {
    name: 'security-events',
    title: 'Anomalies, lockouts and failed sign-ins over time',
    times,
    yTitle: 'Events',
    series: [
      { name: 'Anomalies', color: COLORS.orange, values: points.map((point) => point.anomalies) },
      { name: 'Lockouts', color: COLORS.red, values: points.map((point) => point.lockouts) },
      { name: 'Failed sign-ins', color: COLORS.violet, values: points.map((point) => point.failedLogins) }
    ]
  })

  const held = Object.keys(live.sessionsPerUser).map(Number)
  const most = Math.max(1, ...held)
  const perUser = Array.from({ length: most }, (_, i) => i + 1)
  barChart($('#chart-per-user'), {
    name: 'sessions-per-user',
    title: 'Sessions per user',
    labels: perUser.map(String),
    xTitle: 'Live sessions held',
    yTitle: 'Users',
    series: [{ name: 'Users', color: COLORS.blue, values: perUser.map((n) => live.sessionsPerUser[n] ?? 0) }]
  })
  barChart($('#chart-durations'), {
    name: 'session-durations',
    title: 'Session durations',
    labels: timeline.durations.map((_, i) => DURATION_LABELS[i]),
    xTitle: 'Lasted up to',
    yTitle: 'Sessions',
    series: [{ name: 'Ended sessions', color: COLORS.green, values: timeline.durations.map((bucket) => bucket.count) }]
  })

  const countries = [...new Set([...Object.keys(timeline.signInsByCountry), ...Object.keys(live.countries)])]
    .sort((a, b) => (timeline.signInsByCountry[b] ?? 0) - (timeline.signInsByCountry[a] ?? 0) || a.localeCompare(b))
  const names = new Intl.DisplayNames([], { type: 'region' })
  $('#countries tbody').replaceChildren(...countries.map((code) => {
    const row = document.createElement('tr')
    row.dataset.country = code
    row.innerHTML = '<th scope="row"></th><td class="signins"></td><td class="live"></td>'
    row.querySelector('th').textContent = code === 'unknown' ? 'Unknown' : `${names.of(code) ?? code} (${code})`
    row.querySelector('.signins').textContent = String(timeline.signInsByCountry[code] ?? 0)
    row.querySelector('.live').textContent = String(live.countries[code] ?? 0)
    return row
  }))
  shareChart($('#chart-devices'), { name: 'device-types', title: 'Device types of the live sessions', shares: live.deviceTypes, color: COLORS.blue })
  shareChart($('#chart-browsers'), { name: 'browsers', title: 'Browsers of the live sessions', shares: live.browsers, color: COLORS.violet })
  $('#denied').hidden = true
  $('#dashboard').hidden = false
}

const REASONS = { user: 'by the user', admin: 'by an administrator', limit: 'to make room for a new device', regenerate: 'renewed', reuse: 'after refresh-token reuse', 'password-change': 'after a password change', anomaly: 'after an anomaly' }

function lasted (ms) {
  if (ms === undefined) return ''
  if (ms < 60_000) return ' · lasted under a minute'
  if (ms < 3_600_000) return ` · lasted ${Math.round(ms / 60_000)} min`
  return ` · lasted ${(ms / 3_600_000).toFixed(1)} h`
}

function describeEntry (entry) {
  const detail = entry.detail ?? {}
  switch (entry.type) {
    case 'session.created': return `Signed in${detail.flags?.length ? ` (flagged: ${detail.flags.join(', ')})` : ''}`
    case 'session.revoked': return `Signed out ${REASONS[detail.reason] ?? ''}${lasted(detail.durationMs)}`
    case 'session.evicted': return `Evicted (store full)${lasted(detail.durationMs)}`
    case 'refresh.reuse_detected': return 'Refresh-token reuse detected'
    case 'login.failed': return `Wrong password (${detail.failures} in a row)`
    case 'login.locked': return `Locked out (${detail.scope})`
    case 'anomaly.detected': return `Anomaly: ${detail.rule}, ${detail.decision}`
    case 'challenge.completed': return 'Step-up completed'
    case 'device.remembered': return 'Device remembered'
    case 'device.forgotten': return `Remembered device${detail.scope === 'all' ? 's' : ''} forgotten (${detail.scope})`
    default: return entry.type
  }
}

function place (item) {
  const where = item.location && [item.location.city, item.location.country].filter(Boolean).join(', ')
  return where || item.ip || ''
}

async function showUser (userId) {
  const response = await api('GET', `${API}/users/${encodeURIComponent(userId)}?limit=12`)
  const { sessions, history = [] } = await response.json()
  $('#user-id').textContent = userId
  $('#user-sessions').replaceChildren(...sessions.map((session) => {
    const item = document.createElement('li')
    item.className = 'device'
    item.dataset.sessionId = session.id
    item.innerHTML = '<span></span><div><div class="name"><span class="label"></span></div><div class="meta"></div></div><button type="button" class="danger">Revoke</button>'
    item.querySelector('.label').textContent = session.device?.name ?? 'Unknown device'
    item.querySelector('.meta').textContent = [place(session), `signed in ${new Date(session.createdAt).toLocaleString()}`, ...(session.flags ?? [])].filter(Boolean).join(' · ')
    item.querySelector('button').addEventListener('click', async (event) => {
      if (!window.confirm(`Sign out ${session.device?.name ?? 'this session'} of ${userId}?`)) return
      event.target.disabled = true
      const answer = await api('DELETE', `${API}/sessions/${encodeURIComponent(session.id)}`)
      if (!answer.ok && answer.status !== 404) $('#user-error').textContent = 'That did not work'
      await Promise.all([showUser(userId), renderOverview()])
    })
    return item
  }))
  if (sessions.length === 0) $('#user-sessions').innerHTML = '<li class="device empty">No live session</li>'
  $('#user-history').replaceChildren(...history.map((entry) => {
    const item = document.createElement('li')
    item.innerHTML = '<span class="what"></span><span class="meta"></span>'
    item.querySelector('.what').textContent = describeEntry(entry)
    item.querySelector('.meta').textContent = [entry.device?.name, place(entry), new Date(entry.time).toLocaleString()].filter(Boolean).join(' · ')
    return item
  }))
  $('#user-result').hidden = false
}

$('#user-form').addEventListener('submit', (event) => {
  event.preventDefault()
  $('#user-error').textContent = ''
  showUser(new FormData(event.target).get('userId').trim()).catch(deny)
})
$('#reload').addEventListener('click', () => { renderOverview().catch(deny) })

await refresh()
await renderOverview().catch(deny)
