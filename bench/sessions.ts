import { randomFillSync, randomUUID } from 'node:crypto'
import type { SessionLimit, SessionRecord } from 'fastify-session-guard'

/**
 * Session records shaped like the ones `reply.issueSession()` stores: a
 * 128-bit id, a UUID user id, SHA-256-sized fingerprint and refresh hashes
 * (fresh strings each, as they come from the CSPRNG), the app's claims and
 * the refresh state. Used to fill a store quickly without the login path.
 */

const pool = Buffer.allocUnsafe(1 << 16)
let offset = pool.length

/** `bytes` random bytes as base64url (16 -> 22 characters, 32 -> 43). */
export function randomString (bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const text = pool.toString('base64url', offset, offset + bytes)
  offset += bytes
  return text
}

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
/** The plugin's defaults: 15 sessions per user, the least recently active one evicted. */
export const DEFAULT_LIMIT: SessionLimit = { max: 15, onLimit: 'evict-oldest' }

/** A realistic app claim set: small, the same shape for every user. */
const ROLES = ['member', 'member', 'member', 'admin'] as const

export function sessionRecord (userId: string, now: number, n: number): SessionRecord {
  return {
    id: randomString(16),
    userId,
    fingerprintHash: randomString(32),
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + 30 * MINUTE,
    absoluteExpiresAt: now + 12 * HOUR,
    remembered: false,
    claims: Object.freeze({ role: ROLES[n & 3] as string }),
    refresh: { hash: randomString(32), rotatedAt: now, rotations: 0 }
  }
}

/** `count` user ids (UUIDs, as most user tables hand out). */
export function userIds (count: number): string[] {
  return Array.from({ length: count }, () => randomUUID())
}

/** A list of `count` indices below `below`, drawn at random, to walk without cache-friendly order. */
export function randomIndices (count: number, below: number): Uint32Array {
  const indices = new Uint32Array(count)
  for (let i = 0; i < count; i++) indices[i] = Math.floor(Math.random() * below)
  return indices
}
