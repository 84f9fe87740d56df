import type { Location, SessionRecord, TravelAnchor } from '../session.js'

const EARTH_RADIUS_KM = 6371
const HOUR_MS = 3_600_000

/** The impossible-travel thresholds. */
export interface TravelLimits {
  readonly maxSpeedKmh: number
  /** Shorter moves are geolocation noise. */
  readonly minDistanceKm: number
}

/** What one travel check found. */
export interface Travel {
  /** The implausible leg, as the event's detail; `undefined` when the move is plausible. */
  readonly impossible: Record<string, unknown> | undefined
  /** The session's anchor after this check: `undefined` only while no place with coordinates was seen. */
  readonly anchor: TravelAnchor | undefined
}

type Place = Location & { latitude: number, longitude: number }

/**
 * Checks a move of `session` to `to`, now, along two legs:
 *
 * - from where it was last seen (`location` at `lastSeenAt`): a jump right after
 *   activity elsewhere, whatever happened before;
 * - from its anchor (`anchorOf`): a chain of hops, each shorter than
 *   `minDistanceKm` and so ignored one by one as noise, still adds up here.
 *
 * The anchor moves to `to` only when its leg covered `minDistanceKm` or more
 * and nothing was implausible; otherwise it stays, keeping its own time. Not
 * the time the session was last seen near it: a traveller crossing the noise
 * radius right after a request inside it would then look impossibly fast. Nor
 * the login place forever: after days at home, its time would allow a flight
 * anywhere. So a chain gains at most about twice `minDistanceKm` on
 * `maxSpeedKmh`, once, after a long stay.
 */
export function checkTravel (limits: TravelLimits, session: SessionRecord, to: Location | undefined, now: number): Travel {
  const anchor = anchorOf(session)
  if (!hasCoordinates(to)) return { impossible: undefined, anchor }
  if (anchor === undefined) return { impossible: undefined, anchor: anchorAt(to, now) }
  const fromAnchor = leg('anchor', anchor, anchor.at, to, now)
  const legs = hasCoordinates(session.location) ? [leg('last_seen', session.location, session.lastSeenAt, to, now), fromAnchor] : [fromAnchor]
  // The jump first: its detail says more about what just happened.
  const implausible = legs.find((l) => l.km >= limits.minDistanceKm && l.speedKmh > limits.maxSpeedKmh)
  if (implausible !== undefined) return { impossible: detail(implausible, to), anchor }
  return { impossible: undefined, anchor: fromAnchor.km >= limits.minDistanceKm ? anchorAt(to, now) : anchor }
}

interface Leg {
  readonly since: 'last_seen' | 'anchor'
  readonly from: Location
  readonly km: number
  readonly hours: number
  readonly speedKmh: number
}

function leg (since: Leg['since'], from: Place, at: number, to: Place, now: number): Leg {
  const km = distanceKm(from.latitude, from.longitude, to.latitude, to.longitude)
  const hours = Math.max(now - at, 1) / HOUR_MS
  return { since, from, km, hours, speedKmh: km / hours }
}

function detail ({ since, from, km, hours, speedKmh }: Leg, to: Location): Record<string, unknown> {
  return { since, distanceKm: Math.round(km), minutes: Math.round(hours * 60), speedKmh: Math.round(speedKmh), from: from.country, to: to.country }
}

/** Where travel is measured from: the session's anchor, or its login place while it has none. */
export function anchorOf (session: SessionRecord): TravelAnchor | undefined {
  if (session.travelAnchor !== undefined) return session.travelAnchor
  return hasCoordinates(session.location) ? anchorAt(session.location, session.createdAt) : undefined
}

function anchorAt (place: Place, at: number): TravelAnchor {
  return { latitude: place.latitude, longitude: place.longitude, ...(place.country === undefined ? {} : { country: place.country }), at }
}

export function hasCoordinates (location: Location | undefined): location is Place {
  return typeof location?.latitude === 'number' && typeof location.longitude === 'number'
}

/** Great-circle distance (haversine). */
export function distanceKm (lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180
  const a = Math.sin((lat2 - lat1) * rad / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin((lon2 - lon1) * rad / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.sqrt(a))
}
