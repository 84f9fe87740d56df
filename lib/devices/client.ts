import type { FastifyRequest } from 'fastify'
import { parseDevice } from './device.js'
import type { ClientInfo, Location, SessionRecord } from '../session.js'
import type { PrivacyPolicy } from './privacy.js'

/** Resolves a client IP to a location (the app's `resolveLocation` option). */
export type LocationResolver = (ip: string) => Location | undefined | Promise<Location | undefined>

/**
 * What a session records about its client: the device (User-Agent and client
 * hints), the IP as the privacy policy keeps it, the raw User-Agent if kept,
 * and the location from the app's hook. Taken at login, refreshed on activity.
 */
export class ClientObserver {
  readonly #privacy: PrivacyPolicy
  readonly #resolveLocation: LocationResolver | undefined

  constructor ({ privacy, resolveLocation }: { privacy: PrivacyPolicy, resolveLocation: LocationResolver | undefined }) {
    this.#privacy = privacy
    this.#resolveLocation = resolveLocation
  }

  /** The client of a request, for a new session. */
  async describe (request: FastifyRequest): Promise<ClientInfo> {
    const client: { -readonly [K in keyof ClientInfo]: ClientInfo[K] } = { device: parseDevice(request.headers) }
    const ip = this.#privacy.ip(request.ip)
    if (ip !== undefined) client.ip = ip
    const userAgent = this.#privacy.userAgent(request.headers['user-agent'])
    if (userAgent !== undefined) client.userAgent = userAgent
    const location = await this.#locate(request)
    if (location !== undefined) client.location = location
    return client
  }

  /** The client of a request if it differs from what the session recorded, else `undefined`. */
  async changes (session: SessionRecord, request: FastifyRequest): Promise<ClientInfo | undefined> {
    // parseDevice interns: the same device is the same object, so identity is enough.
    const device = parseDevice(request.headers)
    const ip = this.#privacy.ip(request.ip)
    if (device === session.device && ip === session.ip) return undefined
    return await this.describe(request)
  }

  async #locate (request: FastifyRequest): Promise<Location | undefined> {
    if (this.#resolveLocation === undefined) return undefined
    try {
      return await this.#resolveLocation(request.ip) ?? undefined
    } catch (err) {
      request.log.warn({ err }, 'session guard: resolveLocation failed')
      return undefined
    }
  }
}
