import type { RefreshState, SessionRecord } from '../../session.js'
import type { Decode } from './codec.js'

/**
 * What a session script says of the user's index once it ran, for the
 * stats (see `scripts.ts`). Kept as the script wrote it: the stats script
 * takes it back as it is.
 */
export interface IndexState {
  /** Its latest deadline, '0' when empty. */
  deadline: string
  /** How many sessions it holds. */
  size: string
  /** The version of that size. */
  version: string
  /** Whether this script changed the size. */
  changed: boolean
}

/** What every session script reports besides its outcome: the bookkeeping after it needs it. */
export interface ScriptReport {
  index: IndexState
  /** Sessions the script found past a deadline and removed on the way. */
  expired: SessionRecord[]
}

/**
 * The sessions evicted to make room, or those that filled the limit: most
 * recently active first; `byType` when the device type's limit refused.
 */
export type CreateReply = ScriptReport & ({ outcome: 'created', evicted: SessionRecord[] } | { outcome: 'full', active: SessionRecord[], byType: boolean })
/** The reply of the get and touch scripts: the session, as read or as updated. */
export type SessionReply = ScriptReport & ({ outcome: 'live', session: SessionRecord } | { outcome: 'none' })
export type RotatedSession = SessionRecord & { readonly refresh: RefreshState }
/** `rotated`: the session as updated; `reuse`: an older generation was presented, the session as it was, now revoked. */
export type RotateReply = ScriptReport & (
  | { outcome: 'rotated', session: RotatedSession }
  | { outcome: 'reuse', session: SessionRecord }
  | { outcome: 'conflict' | 'missing' }
)
export type ReplaceReply = ScriptReport & ({ outcome: 'replaced', replaced: SessionRecord } | { outcome: 'none' })
export type RevokeReply = ScriptReport & ({ outcome: 'revoked', session: SessionRecord } | { outcome: 'none' })
/** The reply of the import script: `kept` when the store held a newer copy. */
export type ImportReply = ScriptReport & { outcome: 'imported' | 'kept' }

/** The reply of the revoke-all and list scripts: the sessions revoked or listed, most recently active first. */
export type SessionsReply = ScriptReport & { sessions: SessionRecord[] }

/** Every session script replies `{ status, user, main, others, expired }`: see `scripts.ts`. */
type Raw = [status: string, user: [deadline: string, size: string, version: string, changed: '0' | '1'], main: Stored | [], others: Stored[], expired: Stored[]]
/** A record as the scripts give it: its id, then its JSON (or, of an earlier version's hash, the JSON of its fields). */
type Stored = [id: string, json: string]

/** A reply taken apart once: the named parts, the records decoded (`main` on demand: it may be empty). */
interface Parts {
  status: string
  main: () => SessionRecord
  /** Most recently active first. */
  others: SessionRecord[]
  report: ScriptReport
}

function parts (raw: unknown, read: Read): Parts {
  const [status, [deadline, size, version, changed], main, others, expired] = raw as Raw
  return {
    status,
    main: () => read(main as Stored),
    others: byActivity(others.map(read)),
    report: { index: { deadline, size, version, changed: changed === '1' }, expired: expired.map(read) }
  }
}

/** Reads the records of one user's script reply. */
export type Read = (stored: Stored) => SessionRecord

/** How the records of `userId`'s script replies are read. */
export function readerOf (userId: string, decode: Decode): Read {
  return ([id, json]) => decode(userId, id, json)
}

function byActivity (sessions: SessionRecord[]): SessionRecord[] {
  return sessions.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
}

export function createReply (raw: unknown, read: Read): CreateReply {
  const { status, others, report } = parts(raw, read)
  if (status === 'created') return { ...report, outcome: 'created', evicted: others }
  return { ...report, outcome: 'full', active: others, byType: status === 'full-type' }
}

export function sessionReply (raw: unknown, read: Read): SessionReply {
  const { status, main, report } = parts(raw, read)
  return status === 'live' ? { ...report, outcome: 'live', session: main() } : { ...report, outcome: 'none' }
}

export function rotateReply (raw: unknown, read: Read): RotateReply {
  const { status, main, report } = parts(raw, read)
  switch (status) {
    // The script wrote the refresh fields: the record has them.
    case 'rotated': return { ...report, outcome: 'rotated', session: main() as RotatedSession }
    case 'reuse': return { ...report, outcome: 'reuse', session: main() }
    case 'conflict': return { ...report, outcome: 'conflict' }
    default: return { ...report, outcome: 'missing' }
  }
}

export function replaceReply (raw: unknown, read: Read): ReplaceReply {
  const { status, main, report } = parts(raw, read)
  return status === 'replaced' ? { ...report, outcome: 'replaced', replaced: main() } : { ...report, outcome: 'none' }
}

export function revokeReply (raw: unknown, read: Read): RevokeReply {
  const { status, main, report } = parts(raw, read)
  return status === 'revoked' ? { ...report, outcome: 'revoked', session: main() } : { ...report, outcome: 'none' }
}

export function sessionsReply (raw: unknown, read: Read): SessionsReply {
  const { others, report } = parts(raw, read)
  return { ...report, sessions: others }
}

export function importReply (raw: unknown, read: Read): ImportReply {
  const { status, report } = parts(raw, read)
  return { ...report, outcome: status === 'imported' ? 'imported' : 'kept' }
}
