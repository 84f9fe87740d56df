import { CLOCK_SKEW_ALLOWANCE_MS } from '../../session.js'
/**
 * Every statement the store sends, built once per schema. Each is a single
 * statement (atomic on its own) unless `postgres-store.ts` runs it inside a
 * per-user transaction; each is named, so a connection prepares it once.
 *
 * Times go in and out as the plugin's epoch ms: `ts($n)` turns a parameter
 * into a timestamptz and `ms(column)` a timestamptz back into a number, both
 * exact to the millisecond. A session is live while `expires_at > now`
 * (`expires_at` is generated as the earlier of the two deadlines), the same
 * rule as `isLive()`. Every statement that changes or removes a live session
 * sends `pg_notify(channel, id)` for it, delivered when it commits: the local
 * caches of every instance drop that session.
 *
 * The indexes each statement uses (`sql/postgres/`): the primary key for one
 * session by id, a counter by key and the scan; `(user_id, expires_at)` for a
 * user's sessions; `(expires_at)` for the purge and the stats.
 */

/** A timestamptz from an epoch-ms parameter. */
const ts = (n: number): string => `(timestamptz 'epoch' + $${n}::float8 * interval '1 millisecond')`
/**
 * Past its deadline by more than the clock-skew allowance at $n: what a read, a
 * login or the purge may remove (`isRemovable()` in `lib/session.ts`). A caller
 * whose clock runs ahead refuses a session at once, but never ends it for the others.
 */
const removable = (n: number): string => `expires_at <= ${ts(n)} - interval '${CLOCK_SKEW_ALLOWANCE_MS} milliseconds'`
/** Epoch ms of a timestamptz column. */
const ms = (column: string): string => `(extract(epoch FROM ${column}) * 1000)::float8`

/** The session columns as `SessionRow` names them. */
const COLUMNS = [
  'id', 'user_id', 'fingerprint_hash',
  `${ms('created_at')} AS created_at`,
  `${ms('last_seen_at')} AS last_seen_at`,
  `${ms('idle_expires_at')} AS idle_expires_at`,
  `${ms('absolute_expires_at')} AS absolute_expires_at`,
  'remembered', 'claims::text AS claims', 'refresh_hash', 'refresh_next_hash',
  `${ms('refresh_rotated_at')} AS refresh_rotated_at`,
  'refresh_rotations', 'device::text AS device', 'host(ip) AS ip', 'ip_hash', 'user_agent',
  'location::text AS location', 'flags::text AS flags', 'travel_anchor::text AS travel_anchor'
].join(', ')

/** The session columns of a CTE's result, already in `SessionRow` shape. */
const ROW_NAMES = 'id, user_id, fingerprint_hash, created_at, last_seen_at, idle_expires_at, absolute_expires_at, ' +
  'remembered, claims, refresh_hash, refresh_next_hash, refresh_rotated_at, refresh_rotations, device, ip, ip_hash, ' +
  'user_agent, location, flags, travel_anchor'

/** `INSERT` of one session from 20 parameters from `$from` (`insertValues()`), when `onlyIf` holds. */
function insert (table: string, from: number, onlyIf: string): string {
  const p = (k: number): string => `$${from + k}`
  const values = `${p(0)}, ${p(1)}, ${p(2)}, ${ts(from + 3)}, ${ts(from + 4)}, ${ts(from + 5)}, ${ts(from + 6)}, ` +
    `${p(7)}::boolean, ${p(8)}::jsonb, ${p(9)}, ${p(10)}, ${ts(from + 11)}, ${p(12)}::int, ${p(13)}::jsonb, ${p(14)}::inet, ${p(15)}, ${p(16)}, ` +
    `${p(17)}::jsonb, ${p(18)}::jsonb, ${p(19)}::jsonb`
  return `INSERT INTO ${table} (id, user_id, fingerprint_hash, created_at, last_seen_at, idle_expires_at, absolute_expires_at, ` +
    'remembered, claims, refresh_hash, refresh_next_hash, refresh_rotated_at, refresh_rotations, device, ip, ip_hash, user_agent, ' +
    `location, flags, travel_anchor) SELECT ${values} WHERE ${onlyIf}`
}

/** The `SET` list of an activity update, from 15 parameters from `$from` (`activityValues()`). */
function activity (from: number): string {
  const p = (k: number): string => `$${from + k}`
  const changed = (column: string, flag: number, value: string): string => `${column} = CASE WHEN ${p(flag)}::boolean THEN ${value} ELSE ${column} END`
  return [
    `last_seen_at = ${ts(from)}`,
    `idle_expires_at = ${ts(from + 1)}`,
    changed('device', 2, `${p(3)}::jsonb`),
    changed('ip', 4, `${p(5)}::inet`),
    changed('ip_hash', 4, `${p(6)}::text`),
    changed('user_agent', 7, `${p(8)}::text`),
    changed('location', 9, `${p(10)}::jsonb`),
    changed('flags', 11, `${p(12)}::jsonb`),
    changed('travel_anchor', 13, `${p(14)}::jsonb`)
  ].join(', ')
}

/** A statement and its name, for `pool.query({ name, text, values })`. */
export interface Statement { readonly name: string, readonly text: string }

export class Statements {
  readonly channel: string
  /** $1 id, $2 now. The row, live or not (`live`). */
  readonly get: Statement
  /** $1 id, $2 now. Removes the session if past its deadline by more than the clock-skew allowance, and returns it. */
  readonly expireOne: Statement
  /** $1 id, $2 now. Removes the session if past its deadline at all (a revocation ends it for everyone). */
  readonly endOne: Statement
  /** $1 user, $2 now. Removes the user's sessions past their deadline; then every live one (`live`). */
  readonly userSessions: Statement
  /** $1 id, $2 now, $3.. activity. */
  readonly touch: Statement
  /** $1 id, $2 now, $3 seen hash, $4 seen next hash, $5 seen rotations, $6 hash, $7 next hash, $8 rotatedAt, $9.. activity. */
  readonly rotate: Statement
  /** $1 id, $2 now, $3 seen hash, $4 seen next hash, $5 seen rotations. Removes a session whose old refresh token came back. */
  readonly reuse: Statement
  /**
   * $1 user, $2 now, $3 max, $4 refuse when full, $5..$24 the new session,
   * $25 its device type when that type has a limit (else null), $26 that
   * limit, $27 refuse when the type is full: the per-user limits in one
   * statement (run under the user's lock), the rule of `planCreate()` in
   * `lib/stores/limit.ts`. Removes the user's expired sessions (`expired`);
   * when `$26` of the type are live, either refuses (`active-type`: those,
   * nothing inserted) or removes the least recently active of them
   * (`evicted`); then, when `$3` of the rest are live, either refuses
   * (`active`: every live one, nothing inserted) or removes the least recently
   * active of the rest (`evicted`); then inserts.
   */
  readonly create: Statement
  /** $1 old id, $2 now, then the new session. */
  readonly replace: Statement
  /** $1 id, $2 now. */
  readonly revoke: Statement
  /** $1 user, $2 except id (or null), $3 now. Every row of the user it removes, `live` or not. */
  readonly revokeUser: Statement
  /** $1 after id ('' first), $2 now, $3 limit. */
  readonly scan: Statement
  /** $1 now. How many users hold n live sessions. */
  readonly stats: Statement
  /** $1 now, $2 batch size. Removes up to a batch of expired sessions, skipping rows locked elsewhere. */
  readonly purgeSessions: Statement
  /** $1 now, $2 batch size. */
  readonly purgeCounters: Statement
  /** $1 key, $2 now, $3 expiresAt. */
  readonly increment: Statement
  /** $1 key, $2 now. */
  readonly counter: Statement
  /** $1 key, $2 now. Returns the count left. */
  readonly decrement: Statement
  /** $1 key. Removes a counter taken down to zero. */
  readonly dropEmpty: Statement
  /** $1 key. */
  readonly resetCounter: Statement
  /**
   * $1 now, then a session: writes it as it is, unless the row held under its
   * id is live and supersedes it (more rotations, or as many and more recent
   * activity: `supersedes()` in `lib/session.ts`). Returns a row when written.
   */
  readonly importSession: Statement
  /** $1 after key ('' first), $2 now, $3 limit. Live counters with their window. */
  readonly scanCounters: Statement
  /** $1 key, $2 count, $3 firstAt, $4 lastAt, $5 expiresAt. Writes a counter as it is, over one held. */
  readonly importCounter: Statement
  /**
   * $1 user, $2 time, $3 expiresAt, $4 type, $5 session id, $6 device, $7 ip,
   * $8 ip hash, $9 location, $10 detail, $11 most entries: appends one entry,
   * then removes the user's entries beyond the newest `$11` (run under the user's lock).
   */
  readonly appendHistory: Statement
  /** $1 user, $2 before id (or null), $3 oldest time kept, $4 limit. Newest first. */
  readonly history: Statement
  /** $1 user. */
  readonly eraseHistory: Statement
  /** $1 now, $2 batch size. */
  readonly purgeHistory: Statement

  constructor (schema: string) {
    const sessions = `"${schema}".sessions`
    const counters = `"${schema}".counters`
    const history = `"${schema}".history`
    this.channel = `${schema}_invalidate`
    const notify = `pg_notify('${this.channel}', id)`
    const name = (what: string): string => `session_guard:${schema}:${what}`
    const statement = (what: string, text: string): Statement => ({ name: name(what), text })
    const sameRefresh = 'refresh_hash = $3 AND refresh_next_hash IS NOT DISTINCT FROM $4 AND refresh_rotations = $5'

    this.get = statement('get', `SELECT ${COLUMNS}, expires_at > ${ts(2)} AS live FROM ${sessions} WHERE id = $1`)
    this.expireOne = statement('expire-one', `DELETE FROM ${sessions} WHERE id = $1 AND ${removable(2)} RETURNING ${COLUMNS}`)
    this.endOne = statement('end-one', `DELETE FROM ${sessions} WHERE id = $1 AND expires_at <= ${ts(2)} RETURNING ${COLUMNS}`)
    this.userSessions = statement('user-sessions',
      `WITH gone AS (DELETE FROM ${sessions} WHERE user_id = $1 AND ${removable(2)} RETURNING ${COLUMNS}) ` +
      `SELECT ${ROW_NAMES}, false AS live FROM gone UNION ALL ` +
      `SELECT ${COLUMNS}, true AS live FROM ${sessions} WHERE user_id = $1 AND expires_at > ${ts(2)}`)
    this.touch = statement('touch',
      `UPDATE ${sessions} SET ${activity(3)} WHERE id = $1 AND expires_at > ${ts(2)} RETURNING ${COLUMNS}, ${notify}`)
    this.rotate = statement('rotate',
      `UPDATE ${sessions} SET ${activity(9)}, refresh_hash = $6, refresh_next_hash = $7, refresh_rotated_at = ${ts(8)}, ` +
      `refresh_rotations = refresh_rotations + 1 WHERE id = $1 AND expires_at > ${ts(2)} AND ${sameRefresh} RETURNING ${COLUMNS}, ${notify}`)
    this.reuse = statement('reuse',
      `DELETE FROM ${sessions} WHERE id = $1 AND expires_at > ${ts(2)} AND ${sameRefresh} RETURNING ${COLUMNS}, ${notify}`)
    // evict by lastSeenAt, not createdAt: the user may still be on the older device
    const recent = 'row_number() OVER (ORDER BY last_seen_at DESC, id DESC) AS rank'
    this.create = statement('create',
      `WITH expired AS (DELETE FROM ${sessions} WHERE user_id = $1 AND ${removable(2)} RETURNING ${COLUMNS}), ` +
      // The type as deviceTypeOf() reads it; null (never true) when the type has no limit of its own.
      `live AS (SELECT id, last_seen_at, COALESCE(device->>'type', 'unknown') = $25::text AS typed FROM ${sessions} ` +
      `WHERE user_id = $1 AND expires_at > ${ts(2)}), ` +
      `of_type AS (SELECT id, ${recent} FROM live WHERE typed), ` +
      'type_refused AS (SELECT 1 WHERE $27::boolean AND (SELECT count(*) FROM of_type) >= $26::int), ' +
      'type_evicted AS (SELECT id FROM of_type WHERE NOT $27::boolean AND rank >= $26::int), ' +
      `rest AS (SELECT id, ${recent} FROM live WHERE id NOT IN (SELECT id FROM type_evicted)), ` +
      'total_refused AS (SELECT 1 WHERE $4::boolean AND (SELECT count(*) FROM rest) >= $3::int AND NOT EXISTS (SELECT 1 FROM type_refused)), ' +
      'refused AS (SELECT 1 FROM type_refused UNION ALL SELECT 1 FROM total_refused), ' +
      `evicted AS (DELETE FROM ${sessions} WHERE id IN (SELECT id FROM type_evicted UNION ALL SELECT id FROM rest WHERE rank >= $3::int) ` +
      `AND NOT EXISTS (SELECT 1 FROM refused) RETURNING ${COLUMNS}, ${notify}), ` +
      `inserted AS (${insert(sessions, 5, 'NOT EXISTS (SELECT 1 FROM refused)')} RETURNING id) ` +
      `SELECT 'expired' AS kind, ${ROW_NAMES} FROM expired UNION ALL SELECT 'evicted', ${ROW_NAMES} FROM evicted UNION ALL ` +
      `SELECT 'active', ${COLUMNS} FROM ${sessions} WHERE id IN (SELECT id FROM live) AND EXISTS (SELECT 1 FROM total_refused) UNION ALL ` +
      `SELECT 'active-type', ${COLUMNS} FROM ${sessions} WHERE id IN (SELECT id FROM of_type) AND EXISTS (SELECT 1 FROM type_refused)`)
    this.replace = statement('replace',
      `WITH old AS (DELETE FROM ${sessions} WHERE id = $1 AND expires_at > ${ts(2)} RETURNING ${COLUMNS}, ${notify}), ` +
      `inserted AS (${insert(sessions, 3, 'EXISTS (SELECT 1 FROM old)')} RETURNING id) ` +
      `SELECT ${ROW_NAMES} FROM old`)
    this.revoke = statement('revoke', `DELETE FROM ${sessions} WHERE id = $1 AND expires_at > ${ts(2)} RETURNING ${COLUMNS}, ${notify}`)
    this.revokeUser = statement('revoke-user',
      `DELETE FROM ${sessions} WHERE user_id = $1 AND id IS DISTINCT FROM $2 ` +
      `RETURNING ${COLUMNS}, expires_at > ${ts(3)} AS live, ${notify}`)
    this.scan = statement('scan', `SELECT ${COLUMNS} FROM ${sessions} WHERE id > $1 AND expires_at > ${ts(2)} ORDER BY id LIMIT $3`)
    this.stats = statement('stats',
      `SELECT held::int, count(*)::int AS users FROM (SELECT count(*) AS held FROM ${sessions} WHERE expires_at > ${ts(1)} GROUP BY user_id) AS per_user ` +
      'GROUP BY held ORDER BY held')
    this.purgeSessions = statement('purge-sessions',
      `DELETE FROM ${sessions} WHERE id = ANY(ARRAY(SELECT id FROM ${sessions} WHERE ${removable(1)} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)) ` +
      `RETURNING ${COLUMNS}`)
    this.purgeCounters = statement('purge-counters',
      `DELETE FROM ${counters} WHERE key = ANY(ARRAY(SELECT key FROM ${counters} WHERE ${removable(1)} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)) ` +
      'RETURNING key')
    const counterColumns = `count, ${ms('first_at')} AS first_at, ${ms('last_at')} AS last_at`
    // A counter past its window, or taken down to zero, starts again from one.
    const running = `${counters}.expires_at > ${ts(2)} AND ${counters}.count > 0`
    this.increment = statement('increment',
      `INSERT INTO ${counters} AS c (key, count, first_at, last_at, expires_at) VALUES ($1, 1, ${ts(2)}, ${ts(2)}, ${ts(3)}) ` +
      `ON CONFLICT (key) DO UPDATE SET count = CASE WHEN ${running.replaceAll(counters, 'c')} THEN c.count + 1 ELSE 1 END, ` +
      `first_at = CASE WHEN ${running.replaceAll(counters, 'c')} THEN c.first_at ELSE excluded.first_at END, ` +
      `last_at = excluded.last_at, expires_at = excluded.expires_at RETURNING ${counterColumns}`)
    this.counter = statement('counter', `SELECT ${counterColumns} FROM ${counters} WHERE key = $1 AND ${running}`)
    this.decrement = statement('decrement', `UPDATE ${counters} SET count = count - 1 WHERE key = $1 AND ${running} RETURNING count`)
    this.dropEmpty = statement('drop-empty', `DELETE FROM ${counters} WHERE key = $1 AND count <= 0`)
    this.resetCounter = statement('reset-counter', `DELETE FROM ${counters} WHERE key = $1`)
    const rotations = (row: string): string => `COALESCE(${row}.refresh_rotations, 0)`
    this.importSession = statement('import-session',
      `${insert(sessions, 2, 'true')} ON CONFLICT (id) DO UPDATE SET ` +
      ['user_id', 'fingerprint_hash', 'created_at', 'last_seen_at', 'idle_expires_at', 'absolute_expires_at', 'remembered', 'claims',
        'refresh_hash', 'refresh_next_hash', 'refresh_rotated_at', 'refresh_rotations', 'device', 'ip', 'ip_hash', 'user_agent',
        'location', 'flags', 'travel_anchor'].map((column) => `${column} = excluded.${column}`).join(', ') +
      ` WHERE ${sessions}.expires_at <= ${ts(1)} OR ${rotations('excluded')} > ${rotations(sessions)} OR ` +
      `(${rotations('excluded')} = ${rotations(sessions)} AND excluded.last_seen_at >= ${sessions}.last_seen_at) ` +
      `RETURNING id, ${notify}`)
    this.scanCounters = statement('scan-counters',
      `SELECT key, ${counterColumns}, ${ms('expires_at')} AS expires_at FROM ${counters} WHERE key > $1 AND ${running} ` +
      'ORDER BY key LIMIT $3')
    this.importCounter = statement('import-counter',
      `INSERT INTO ${counters} (key, count, first_at, last_at, expires_at) VALUES ($1, $2, ${ts(3)}, ${ts(4)}, ${ts(5)}) ` +
      'ON CONFLICT (key) DO UPDATE SET count = excluded.count, first_at = excluded.first_at, last_at = excluded.last_at, expires_at = excluded.expires_at')
    // The insert is not visible to the statement's own DELETE: of the rows held before it, keep the newest $11 - 1.
    this.appendHistory = statement('append-history',
      `WITH added AS (INSERT INTO ${history} (user_id, at, expires_at, type, session_id, device, ip, ip_hash, location, detail) ` +
      `VALUES ($1, ${ts(2)}, ${ts(3)}, $4, $5, $6::jsonb, $7::inet, $8, $9::jsonb, $10::jsonb) RETURNING id) ` +
      `DELETE FROM ${history} WHERE user_id = $1 AND id <= (SELECT id FROM ${history} WHERE user_id = $1 ORDER BY id DESC OFFSET $11::int - 1 LIMIT 1)`)
    this.history = statement('history',
      `SELECT id::text AS cursor, ${ms('at')} AS at, type, session_id, device::text AS device, host(ip) AS ip, ip_hash, location::text AS location, detail::text AS detail ` +
      `FROM ${history} WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint) AND at >= ${ts(3)} ORDER BY id DESC LIMIT $4`)
    this.eraseHistory = statement('erase-history', `DELETE FROM ${history} WHERE user_id = $1`)
    this.purgeHistory = statement('purge-history',
      `DELETE FROM ${history} WHERE id = ANY(ARRAY(SELECT id FROM ${history} WHERE expires_at <= ${ts(1)} ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)) ` +
      'RETURNING id')
  }
}
