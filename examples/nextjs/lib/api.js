import { cookies, headers } from 'next/headers'

/** The API, which this server reaches directly; the browser only ever talks to this server. */
const API_URL = process.env.API_URL ?? 'http://127.0.0.1:3001'

/**
 * Calls the API for the signed-in user, from server components and route
 * handlers: the browser's cookies (the access token, the fingerprint) are
 * forwarded, and its User-Agent, so the API's device and anomaly rules see the
 * browser, not this server.
 */
export async function api (path, init = {}) {
  const [jar, incoming] = await Promise.all([cookies(), headers()])
  const forwarded = new Headers(init.headers)
  forwarded.set('cookie', jar.toString())
  forwarded.set('user-agent', incoming.get('user-agent') ?? '')
  return await fetch(`${API_URL}${path}`, { ...init, headers: forwarded, cache: 'no-store' })
}

/** Calls the API on behalf of a browser that has no session yet (the sign-in). */
export async function publicApi (path, init = {}) {
  return await fetch(`${API_URL}${path}`, { ...init, cache: 'no-store' })
}
