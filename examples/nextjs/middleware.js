import { NextResponse } from 'next/server'

const API_URL = process.env.API_URL ?? 'http://127.0.0.1:3001'
/** This app's origin as the browser sees it (the API lists it in `refresh.allowedOrigins`). */
const APP_ORIGIN = process.env.APP_ORIGIN ?? 'http://127.0.0.1:3000'
/** How long before the access token expires the middleware refreshes, so that the render's API calls never straddle the expiry. */
const MARGIN_SECONDS = 5

/** Whether the access token (read, not verified: the API does that) expires within the margin. */
function expiresSoon (token) {
  try {
    const { exp } = JSON.parse(atob(token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/')))
    return typeof exp !== 'number' || exp - Date.now() / 1000 < MARGIN_SECONDS
  } catch {
    return true
  }
}

/**
 * The refresh before the page renders: when the browser has dropped the
 * access token cookie (at its `Max-Age`), or the token is about to expire, and
 * the browser holds the refresh cookie (`refresh.cookiePath: '/'` on the API,
 * so it comes with page requests), it refreshes through the API, hands the new
 * cookies to this render and passes the `Set-Cookie` lines back to the browser.
 */
export async function middleware (request) {
  const access = request.cookies.get('__Host-sg-at')?.value
  if (!request.cookies.has('__Secure-sg-rt') || (access !== undefined && !expiresSoon(access))) return NextResponse.next()
  // This server sends the CSRF header for the browser: an unsafe request (a form) must come from this app.
  const safe = request.method === 'GET' || request.method === 'HEAD'
  if (!safe && request.headers.get('origin') !== APP_ORIGIN) return NextResponse.next()
  const refreshed = await fetch(`${API_URL}/refresh`, {
    method: 'POST',
    headers: {
      cookie: request.headers.get('cookie') ?? '',
      origin: APP_ORIGIN,
      'x-requested-with': 'next-middleware',
      'user-agent': request.headers.get('user-agent') ?? '',
      ...(request.headers.has('x-forwarded-for') ? { 'x-forwarded-for': request.headers.get('x-forwarded-for') } : {})
    },
    cache: 'no-store'
  })
  const lines = refreshed.headers.getSetCookie()
  if (refreshed.ok) {
    // This render sees the new cookies (request.cookies writes the request's cookie header).
    for (const line of lines) {
      const pair = line.slice(0, line.indexOf(';'))
      const at = pair.indexOf('=')
      request.cookies.set(pair.slice(0, at), pair.slice(at + 1))
    }
  }
  const response = NextResponse.next({ request: { headers: request.headers } })
  // The browser's jar gets them too (or has them cleared, when the session is over).
  for (const line of lines) response.headers.append('set-cookie', line)
  return response
}

export const config = { matcher: ['/devices/:path*', '/auth/revoke', '/auth/logout'] }
