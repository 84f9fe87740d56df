import { api, APP_ORIGIN, formHeaders } from '../../../lib/api.js'

/**
 * "Sign out of this device": the same `Origin` check as the revoke, then the
 * API's logout, whose `Set-Cookie` lines (clearing the plugin's cookies) are
 * passed back to the browser.
 */
export async function POST (request) {
  if (request.headers.get('origin') !== APP_ORIGIN) return new Response(null, { status: 403 })
  const answer = await api('/logout', { method: 'POST', headers: formHeaders })
  const response = new Response(null, { status: 303, headers: { location: '/login' } })
  for (const line of answer.headers.getSetCookie()) response.headers.append('set-cookie', line)
  return response
}
