/**
 * The login history (`appendHistory`, `history`, `eraseHistory`): one stream
 * per user, `{u:<userId>}:h`, in the user's slot. Each entry is one field,
 * `e`, the record as JSON. Stream ids are the cursors: the plugin's clock in
 * ms (never less than the newest entry's, so ids only grow), then a sequence.
 */
import type { HistoryEntry, HistoryQuery, HistoryRecord, HistoryRetention } from '../store.js'
import type { Commands, Connection } from './connection.js'

/**
 * Appends, then trims by count (`MAXLEN`) and by age (`MINID`), and lets the
 * key live as long as its newest entry. One atomic step.
 * KEYS: history. ARGV: now, maxEntries, oldest id kept (ms), ttlMs, entry JSON.
 */
const APPEND = `
local ms = tonumber(ARGV[1])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then
  local held = tonumber(string.match(newest[1][1], '^(%d+)-'))
  if held > ms then ms = held end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%d', ms) .. '-*', 'e', ARGV[5])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return id
`

/**
 * Newest first, from before the cursor (exclusive) down to the oldest id kept.
 * KEYS: history. ARGV: end ('+' or '(' .. cursor), oldest id kept, limit.
 */
const READ = `
return redis.call('XREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
`

/** The history scripts, as `defineCommand` takes them. */
export const HISTORY_COMMANDS = {
  sessionGuardHistoryAppend: { lua: APPEND, numberOfKeys: 1 },
  sessionGuardHistoryRead: { lua: READ, numberOfKeys: 1 }
} as const satisfies Commands

/** A stream id: the only cursors this store gives (never `0-0`, below every entry). */
const STREAM_ID = /^(?:[1-9]\d{0,15}-\d{1,16}|0-0*[1-9]\d{0,15})$/

/** The oldest stream id an entry may have and still be kept at `now`. */
function oldestKept (maxAgeMs: number, now: number): string {
  return String(Math.max(0, now - maxAgeMs + 1))
}

export async function append (connection: Connection, key: string, entry: HistoryRecord, { maxEntries, maxAgeMs }: HistoryRetention, now: number): Promise<void> {
  await connection.script('sessionGuardHistoryAppend', [key], [now, maxEntries, oldestKept(maxAgeMs, now), maxAgeMs, JSON.stringify(entry)])
}

export async function read (connection: Connection, key: string, { limit, before }: HistoryQuery, { maxAgeMs }: HistoryRetention, now: number): Promise<HistoryEntry[]> {
  // A cursor this store never gave names no entry: nothing is older than it here.
  if (before !== undefined && !STREAM_ID.test(before)) return []
  const reply = await connection.script('sessionGuardHistoryRead', [key], [
    before === undefined ? '+' : `(${before}`, oldestKept(maxAgeMs, now), limit
  ]) as Array<[id: string, fields: string[]]>
  return reply.map(([id, fields]) => Object.freeze({ ...JSON.parse(fields[1] as string) as HistoryRecord, id }))
}
