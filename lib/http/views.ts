import type { DeviceType } from '../devices/device.js'
import { expiresAt, type Location, type SessionRecord } from '../session.js'

/**
 * A session as a client or an admin sees it: what the "Your devices" page
 * needs, and nothing secret (no hashes, no claims, no refresh state).
 */
export interface SessionView {
  /** The session id: the one `DELETE /sessions/:id` takes. */
  id: string
  /** Whether this is the session of the request that asked. */
  isCurrent: boolean
  /** ISO 8601 times. */
  createdAt: string
  lastActiveAt: string
  expiresAt: string
  remembered: boolean
  /** The device, when its User-Agent said anything. */
  device?: {
    type: DeviceType
    /** "Firefox on Windows", "Safari on iPhone". */
    name: string
    browser?: string
    browserVersion?: string
    os?: string
    osVersion?: string
    /** The hardware model when known: "Pixel 8", "iPhone". */
    model?: string
  }
  /** The IP as the privacy policy keeps it. */
  ip?: string
  location?: Location
  /** Anomalies flagged on the session (`'new_device'`, `'new_country'` …), for a "new location" hint. */
  flags?: string[]
  /**
   * How the session was signed in: the `amr` claim (RFC 8176 values such as
   * `'pwd'`, `'otp'`, `'hwk'`) when the app put one in `issueSession({ claims })`.
   * No other claim is shown.
   */
  authMethods?: string[]
  /** How many times the session was renewed (its refresh token exchanged) since the sign-in. */
  renewals: number
}

export function toView (session: SessionRecord, currentId?: string): SessionView {
  return {
    id: session.id,
    isCurrent: session.id === currentId,
    createdAt: new Date(session.createdAt).toISOString(),
    lastActiveAt: new Date(session.lastSeenAt).toISOString(),
    expiresAt: new Date(expiresAt(session)).toISOString(),
    remembered: session.remembered,
    ...(session.device === undefined
      ? {}
      : {
          device: {
            type: session.device.type,
            name: session.device.name,
            browser: session.device.browser.name,
            browserVersion: session.device.browser.version,
            os: session.device.os.name,
            osVersion: session.device.os.version,
            ...(session.device.model === undefined ? {} : { model: session.device.model })
          }
        }),
    ...(session.ip === undefined ? {} : { ip: session.ip }),
    ...(session.location === undefined ? {} : { location: session.location }),
    ...(session.flags === undefined ? {} : { flags: [...session.flags] }),
    ...authMethodsOf(session),
    renewals: session.refresh?.rotations ?? 0
  }
}

/** The `amr` claim, when it is a list of strings: how the user proved who they were. */
function authMethodsOf (session: SessionRecord): { authMethods?: string[] } {
  const amr = session.claims?.amr
  return Array.isArray(amr) && amr.every((method) => typeof method === 'string') ? { authMethods: [...amr as string[]] } : {}
}

/** Current session first, then most recently active first. */
export function toViews (sessions: readonly SessionRecord[], currentId?: string): SessionView[] {
  return sessions
    .map((session) => toView(session, currentId))
    .sort((a, b) => Number(b.isCurrent) - Number(a.isCurrent) || b.lastActiveAt.localeCompare(a.lastActiveAt))
}

/** JSON schema of a `SessionView`, for response schemas (and so for `@fastify/swagger`). */
export const sessionViewSchema = {
  type: 'object',
  required: ['id', 'isCurrent', 'createdAt', 'lastActiveAt', 'expiresAt', 'remembered', 'renewals'],
  properties: {
    id: { type: 'string' },
    isCurrent: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
    lastActiveAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    remembered: { type: 'boolean' },
    device: {
      type: 'object',
      required: ['type', 'name'],
      properties: {
        type: { type: 'string', enum: ['desktop', 'mobile', 'tablet', 'bot', 'unknown'] },
        name: { type: 'string' },
        browser: { type: 'string' },
        browserVersion: { type: 'string' },
        os: { type: 'string' },
        osVersion: { type: 'string' },
        model: { type: 'string' }
      }
    },
    ip: { type: 'string' },
    flags: { type: 'array', items: { type: 'string' } },
    authMethods: { type: 'array', items: { type: 'string' }, description: 'The `amr` claim of the sign-in (RFC 8176): pwd, otp, hwk …' },
    renewals: { type: 'integer', description: 'How many times the session was renewed (its token exchanged) since the sign-in' },
    location: {
      type: 'object',
      properties: {
        country: { type: 'string' },
        city: { type: 'string' },
        latitude: { type: 'number' },
        longitude: { type: 'number' }
      }
    }
  }
} as const

/** JSON schema of a "Was this you?" alert as the `GET /alerts` route answers it. */
export const alertSchema = {
  type: 'object',
  required: ['session'],
  properties: { session: { ...sessionViewSchema, description: 'The flagged session; its `flags` say why' } }
} as const

/** JSON schema of a login-history entry (`app.sessions.history()`), for response schemas. */
export const historyEntrySchema = {
  type: 'object',
  required: ['id', 'type', 'time'],
  properties: {
    id: { type: 'string', description: 'The cursor: `before` takes it for the next page' },
    type: { type: 'string', description: 'The event: session.created, session.revoked, login.failed …' },
    time: { type: 'number', description: 'Epoch ms' },
    sessionId: { type: 'string' },
    device: { type: 'object', required: ['type', 'name'], properties: { type: { type: 'string' }, name: { type: 'string' } } },
    ip: { type: 'string' },
    location: { type: 'object', properties: { country: { type: 'string' }, city: { type: 'string' } } },
    detail: { type: 'object', additionalProperties: true }
  }
} as const

const errorProperties = {
  statusCode: { type: 'integer' },
  code: { type: 'string' },
  error: { type: 'string' },
  message: { type: 'string' }
} as const

/**
 * Response schema for the `409` of a login refused at the session limit. Put
 * it on your login route (`schema: { response: { 409: sessionLimitResponseSchema } }`)
 * so the answer carries the user's sessions and the ticket that resolves it
 * (only those of one device type, named in `deviceType`, when that type's
 * limit refused).
 */
export const sessionLimitResponseSchema = {
  type: 'object',
  properties: {
    ...errorProperties,
    sessions: { type: 'array', items: sessionViewSchema },
    ticket: { type: 'string' },
    deviceType: { type: 'string', description: 'Set when the limit of this device type refused (deviceTypeLimits): `sessions` are those of that type, and the ticket signs out only one of them' }
  }
} as const

export const errorResponseSchema = { type: 'object', properties: errorProperties } as const
