import { cookies, headers } from 'next/headers'

/** The API, which this server reaches directly; the browser only ever talks to this server. */
const API_URL = process.env.API_URL ?? 'http://127.0.0.1:3001'
/** This app's origin as the browser sees it; the API lists it in `refresh.allowedOrigins`. */
export const APP_ORIGIN = process.env.APP_ORIGIN ?? 'http://127.0.0.1:3000'

/**
 * What a route handler taking a form adds to its unsafe call: a form cannot
 * send the CSRF header, so this server does, as the app's own origin, once it
 * has checked that the browser's `Origin` is this app's.
 */
export const formHeaders = { origin: APP_ORIGIN, 'x-requested-with': 'render-server' }

/**
 * Calls the API for the signed-in user, from server components and route
 * handlers: the browser's cookies (the access token, the fingerprint) are
 * forwarded, and its User-Agent and address (`x-forwarded-for`, for an API
 * with `trustProxy`), so the API's device and anomaly rules see the browser,
 * not this server.
 */
export async function api (path, init = {}) {
  const [jar, incoming] = await Promise.all([cookies(), headers()])
  const forwarded = new Headers(init.headers)
  forwarded.set('cookie', jar.toString())
  forwarded.set('user-agent', incoming.get('user-agent') ?? '')
  const client = incoming.get('x-forwarded-for')
  if (client !== null) forwarded.set('x-forwarded-for', client)
  return await fetch(`${API_URL}${path}`, { ...init, headers: forwarded, cache: 'no-store' })
}

/** Calls the API on behalf of a browser that has no session yet (the sign-in). */
export async function publicApi (path, init = {}) {
  return await fetch(`${API_URL}${path}`, { ...init, cache: 'no-store' })
}
