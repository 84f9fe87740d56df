import { api, APP_ORIGIN, formHeaders } from '../../../lib/api.js'

/**
 * The "Sign out" button next to another device: a plain form, which cannot
 * send the API's CSRF header. This server adds it, so this server checks
 * first that the form came from this app (its `Origin`), and refuses anything
 * else, a missing `Origin` included.
 */
export async function POST (request) {
  if (request.headers.get('origin') !== APP_ORIGIN) return new Response(null, { status: 403 })
  const id = (await request.formData()).get('id')
  if (typeof id !== 'string' || id === '') return new Response(null, { status: 400 })
  const answer = await api(`/sessions/${encodeURIComponent(id)}`, { method: 'DELETE', headers: formHeaders })
  return new Response(null, { status: 303, headers: { location: answer.status === 401 ? '/login' : '/devices' } })
}
