import { headers } from 'next/headers'
import { publicApi } from '../../../lib/api.js'

/**
 * The sign-in: the API answers with its cookies (fingerprint, refresh token
 * and, with `accessToken.transport: 'both'`, the access token), which are
 * passed back to the browser, on this server's own host.
 */
export async function POST (request) {
  const form = await request.formData()
  const incoming = await headers()
  const answer = await publicApi('/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': incoming.get('user-agent') ?? '' },
    body: JSON.stringify({ username: form.get('username'), password: form.get('password') })
  })
  const response = new Response(null, { status: 303, headers: { location: answer.ok ? '/devices' : '/login?error=1' } })
  for (const line of answer.headers.getSetCookie()) response.headers.append('set-cookie', line)
  return response
}
