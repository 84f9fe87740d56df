import { deviceTypeOf, type SessionRecord } from '../session.js'
import type { CreateResult, SessionLimit } from './store.js'

/**
 * What `create` does at the per-user limit, decided from the user's live
 * sessions (most recently active first): which to evict, or the refusal. The
 * rule of `SessionStore.create`, for a store that decides in JavaScript while
 * it holds the user's sessions still (the memory store); the Redis script
 * (`CREATE` in `redis/scripts.ts`) and the PostgreSQL statement (`create` in
 * `postgres/statements.ts`) mirror it, and the conformance suite holds all
 * three to it.
 *
 * The device type's limit first: at its `max`, evict the least recently
 * active of that type (never of another), or refuse with that type's
 * sessions. Then the total, over the sessions not evicted: at `max`, evict the
 * least recently active of any type, or refuse with every live session.
 */
export function planCreate (live: readonly SessionRecord[], limit: SessionLimit): CreateResult {
  const evicted = new Set<SessionRecord>()
  const typed = limit.deviceType
  if (typed !== undefined) {
    const ofType = live.filter((session) => deviceTypeOf(session) === typed.type)
    if (ofType.length >= typed.max) {
      if (typed.onLimit === 'reject') return { created: false, active: ofType, deviceType: typed.type }
      for (const session of ofType.slice(typed.max - 1)) evicted.add(session)
    }
  }
  const rest = live.filter((session) => !evicted.has(session))
  if (rest.length >= limit.max) {
    if (limit.onLimit === 'reject') return { created: false, active: live }
    // evict by lastSeenAt, not createdAt: the user may still be on the older device
    for (const session of rest.slice(limit.max - 1)) evicted.add(session)
  }
  // Most recently active first, as `live` has them.
  return { created: true, evicted: live.filter((session) => evicted.has(session)) }
}
