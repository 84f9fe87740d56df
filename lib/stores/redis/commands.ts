import { isLive, type SessionRecord } from '../../session.js'
import type { Activity, Rotation, SessionLimit } from '../store.js'
import { encode, encodeActivity, type Decode } from './codec.js'
import type { Commands, Connection } from './connection.js'
import type { KeyLayout } from './keys.js'
import {
  createReply,
  importReply,
  readerOf,
  replaceReply,
  revokeReply,
  rotateReply,
  sessionReply,
  sessionsReply,
  type CreateReply,
  type ImportReply,
  type Read,
  type ReplaceReply,
  type RevokeReply,
  type RotateReply,
  type SessionReply,
  type SessionsReply
} from './replies.js'
import * as scripts from './scripts.js'

/** The session scripts, as `defineCommand` takes them. */
export const SESSION_COMMANDS = {
  sessionGuardCreate: { lua: scripts.CREATE, numberOfKeys: 2 },
  sessionGuardGet: { lua: scripts.GET, numberOfKeys: 2 },
  sessionGuardTouch: { lua: scripts.TOUCH, numberOfKeys: 2 },
  sessionGuardRotate: { lua: scripts.ROTATE, numberOfKeys: 2 },
  sessionGuardReplace: { lua: scripts.REPLACE, numberOfKeys: 3 },
  sessionGuardRevoke: { lua: scripts.REVOKE, numberOfKeys: 2 },
  sessionGuardRevokeUser: { lua: scripts.REVOKE_USER, numberOfKeys: 1 },
  sessionGuardListUser: { lua: scripts.LIST_USER, numberOfKeys: 1 },
  sessionGuardImport: { lua: scripts.IMPORT, numberOfKeys: 2 }
} as const satisfies Commands

/**
 * The session scripts as typed calls: each builds the keys and arguments its
 * script takes (see `scripts.ts`) and reads its reply once, into a named object.
 * The scripts do the work; what follows them (lookups, the local cache, the
 * stats) is the store's.
 */
export class SessionCommands {
  readonly #connection: Connection
  readonly #keys: KeyLayout
  readonly #decode: Decode

  constructor (connection: Connection, keys: KeyLayout, decode: Decode) {
    this.#connection = connection
    this.#keys = keys
    this.#decode = decode
  }

  async create (session: SessionRecord, limit: SessionLimit, now: number): Promise<CreateReply> {
    const { userId } = session
    return createReply(await this.#run('sessionGuardCreate', [this.#keys.index(userId), this.#keys.session(userId, session.id)], [
      now, limit.max, limit.onLimit, this.#keys.scriptBase(userId), this.#keys.channel,
      limit.deviceType?.type ?? '', limit.deviceType?.max ?? 0, limit.deviceType?.onLimit ?? '',
      session.id, encode(session)
    ]), this.#read(userId))
  }

  /**
   * A plain read: the session in one `GET`, without a script, when it is
   * live at `now`. Anything else is `undefined`, and the caller runs `get`,
   * whose script removes what must go and reports it (and reads a session an
   * earlier version kept as a hash). A live session is all most requests
   * read, and a script costs Redis several times a `GET` (`npm run bench`,
   * "Redis µs/req"). Never from a replica: one that lags behind a revocation
   * would answer with the revoked session.
   */
  async readLive (userId: string, id: string, now: number): Promise<SessionRecord | undefined> {
    if (this.#connection.readsMayReachReplicas) return undefined
    const stored = await this.#connection.run(this.#connection.redis.get(this.#keys.session(userId, id)))
    if (stored === null) return undefined
    const session = this.#decode(userId, id, stored)
    return isLive(session, now) ? session : undefined
  }

  async get (userId: string, id: string, now: number): Promise<SessionReply> {
    return sessionReply(await this.#run('sessionGuardGet', this.#sessionKeys(userId, id), [now, id]), this.#read(userId))
  }

  async touch (userId: string, id: string, activity: Activity, now: number): Promise<SessionReply> {
    return sessionReply(await this.#run('sessionGuardTouch', this.#sessionKeys(userId, id), [
      now, id, this.#keys.channel, ...encodeActivity(activity)
    ]), this.#read(userId))
  }

  async rotate (userId: string, id: string, rotation: Rotation, now: number): Promise<RotateReply> {
    return rotateReply(await this.#run('sessionGuardRotate', this.#sessionKeys(userId, id), [
      now, id, this.#keys.channel, rotation.presentedHash, rotation.successorHash, rotation.graceMs,
      ...encodeActivity(rotation.activity)
    ]), this.#read(userId))
  }

  /** `session` is of the same user as `oldId`: looked for among that user's sessions only. */
  async replace (oldId: string, session: SessionRecord, now: number): Promise<ReplaceReply> {
    const { userId } = session
    return replaceReply(await this.#run('sessionGuardReplace', [
      this.#keys.index(userId), this.#keys.session(userId, oldId), this.#keys.session(userId, session.id)
    ], [now, oldId, this.#keys.channel, session.id, encode(session)]), this.#read(userId))
  }

  async revoke (userId: string, id: string, now: number): Promise<RevokeReply> {
    return revokeReply(await this.#run('sessionGuardRevoke', this.#sessionKeys(userId, id), [now, id, this.#keys.channel]), this.#read(userId))
  }

  async revokeUser (userId: string, exceptId: string | undefined, now: number): Promise<SessionsReply> {
    return sessionsReply(await this.#run('sessionGuardRevokeUser', [this.#keys.index(userId)], [
      now, this.#keys.scriptBase(userId), this.#keys.channel, exceptId ?? ''
    ]), this.#read(userId))
  }

  async listUser (userId: string, now: number): Promise<SessionsReply> {
    return sessionsReply(await this.#run('sessionGuardListUser', [this.#keys.index(userId)], [now, this.#keys.scriptBase(userId)]), this.#read(userId))
  }

  /** Writes `session` as it is, unless a newer copy is held. */
  async import (session: SessionRecord, now: number): Promise<ImportReply> {
    const { userId, id } = session
    return importReply(await this.#run('sessionGuardImport', this.#sessionKeys(userId, id), [
      now, this.#keys.channel, session.refresh?.rotations ?? 0, session.lastSeenAt, id, encode(session)
    ]), this.#read(userId))
  }

  /** How the records of a reply to a script on `userId`'s keys are read. */
  #read (userId: string): Read {
    return readerOf(userId, this.#decode)
  }

  /** The keys of a script on one session: the user's index, the session. */
  #sessionKeys (userId: string, id: string): string[] {
    return [this.#keys.index(userId), this.#keys.session(userId, id)]
  }

  async #run (name: keyof typeof SESSION_COMMANDS, keys: string[], args: Array<string | number>): Promise<unknown> {
    return await this.#connection.script(name, keys, args)
  }
}
