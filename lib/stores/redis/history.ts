/**
 * The login history (`appendHistory`, `history`, `eraseHistory`): one list
 * per user, `{u:<userId>}:h`, in the user's slot, newest first. Each element
 * is `<id> <record as JSON>`; the id, `<ms>-<seq>`, is the cursor: the
 * plugin's clock in ms (never less than the newest entry's, so ids only
 * grow), then a sequence within that ms.
 *
 * A list, not a stream: Redis gives a stream's first node 4 KB up front
 * (`stream-node-max-bytes`), so a user with three entries cost 4.7 KB; as a
 * list they take about what they hold. A history an earlier version wrote as
 * a stream, with the same ids, becomes a list the first time a script meets
 * it (`LIST`), keeping its entries, ids and TTL.
 */
import type { HistoryEntry, HistoryQuery, HistoryRecord, HistoryRetention } from '../store.js'
import type { Commands, Connection } from './connection.js'

/** Makes a stream history written by an earlier version a list, in place (entries, ids and TTL kept). */
const LIST = `
local function list(key)
  if redis.call('TYPE', key).ok ~= 'stream' then return end
  local ttl = redis.call('PTTL', key)
  local entries = redis.call('XRANGE', key, '-', '+')
  redis.call('DEL', key)
  for _, entry in ipairs(entries) do
    redis.call('LPUSH', key, entry[1] .. ' ' .. entry[2][2])
  end
  if #entries > 0 and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

-- The ms and sequence of an element's id.
local function idOf(element)
  local ms, seq = string.match(element, '^(%d+)-(%d+) ')
  return tonumber(ms), tonumber(seq)
end
`

/**
 * Appends, then trims by count and by age, and lets the key live as long as
 * its newest entry. One atomic step.
 * KEYS: history. ARGV: now, maxEntries, oldest ms kept, ttlMs, entry JSON.
 */
const APPEND = `${LIST}
local key = KEYS[1]
list(key)
local ms, seq = tonumber(ARGV[1]), 0
local newest = redis.call('LINDEX', key, 0)
if newest then
  local heldMs, heldSeq = idOf(newest)
  if heldMs >= ms then ms, seq = heldMs, heldSeq + 1 end
end
local id = string.format('%d-%d', ms, seq)
redis.call('LPUSH', key, id .. ' ' .. ARGV[5])
redis.call('LTRIM', key, 0, tonumber(ARGV[2]) - 1)
local oldest = tonumber(ARGV[3])
while true do
  local last = redis.call('LINDEX', key, -1)
  if idOf(last) >= oldest then break end
  redis.call('RPOP', key)
end
redis.call('PEXPIRE', key, ARGV[4])
return id
`

/**
 * Newest first, from before the cursor (exclusive) down to the oldest ms
 * kept, at most `limit` elements.
 * KEYS: history. ARGV: cursor ms and sequence ('' for none), oldest ms kept, limit.
 */
const READ = `${LIST}
local key = KEYS[1]
list(key)
local beforeMs, beforeSeq = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, element in ipairs(redis.call('LRANGE', key, 0, -1)) do
  local ms, seq = idOf(element)
  if ms < oldest or #out >= limit then break end
  if beforeMs == nil or ms < beforeMs or (ms == beforeMs and seq < beforeSeq) then out[#out + 1] = element end
end
return out
`

/** The history scripts, as `defineCommand` takes them. */
export const HISTORY_COMMANDS = {
  sessionGuardHistoryAppend: { lua: APPEND, numberOfKeys: 1 },
  sessionGuardHistoryRead: { lua: READ, numberOfKeys: 1 }
} as const satisfies Commands

/** An entry's id: the only cursors this store gives (never `0-0`, below every entry). */
const ENTRY_ID = /^(?:[1-9]\d{0,15}-\d{1,16}|0-0*[1-9]\d{0,15})$/

/** The oldest ms an entry may have and still be kept at `now`. */
function oldestKept (maxAgeMs: number, now: number): number {
  return Math.max(0, now - maxAgeMs + 1)
}

export async function append (connection: Connection, key: string, entry: HistoryRecord, { maxEntries, maxAgeMs }: HistoryRetention, now: number): Promise<void> {
  await connection.script('sessionGuardHistoryAppend', [key], [now, maxEntries, oldestKept(maxAgeMs, now), maxAgeMs, JSON.stringify(entry)])
}

export async function read (connection: Connection, key: string, { limit, before }: HistoryQuery, { maxAgeMs }: HistoryRetention, now: number): Promise<HistoryEntry[]> {
  // A cursor this store never gave names no entry: nothing is older than it here.
  if (before !== undefined && !ENTRY_ID.test(before)) return []
  const [ms = '', seq = ''] = before === undefined ? [] : before.split('-')
  const reply = await connection.script('sessionGuardHistoryRead', [key], [ms, seq, oldestKept(maxAgeMs, now), limit]) as string[]
  return reply.map((element) => {
    const space = element.indexOf(' ')
    return Object.freeze({ ...JSON.parse(element.slice(space + 1)) as HistoryRecord, id: element.slice(0, space) })
  })
}
