import { createHash } from 'node:crypto'
import { open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { InvalidOptionError, SnapshotInvalidError } from '../errors.js'
import { section, type OptionNames } from '../validate.js'
import { sessionRecord, type SessionRecord } from '../session.js'
import type { HeldCounter, StoreContext } from './store.js'

/** The first words of every snapshot: a file without them is not one. */
export const SNAPSHOT_MAGIC = 'fastify-session-guard memory snapshot'
/** The format this release writes and reads. */
export const SNAPSHOT_VERSION = 1

const HEADER = /^fastify-session-guard memory snapshot v(\d+) sha256=([0-9a-f]{64})$/
/** Longer than any header: a file whose first line runs past it is no snapshot. */
const MAX_HEADER_BYTES = 200
const DEFAULT_INTERVAL_MS = 60_000
const SNAPSHOT_OPTION_NAMES: OptionNames<SnapshotOptions> = { path: true, intervalMs: true, onInvalid: true }
const PATH = 'memoryStore.snapshot'

export interface SnapshotOptions {
  /** The file the snapshot lives in. Its directory must exist; a `<path>.tmp` beside it is written first, then renamed. */
  path: string
  /**
   * How often a snapshot is written, in ms (and once more on `close()`). A
   * process killed between two loses at most the changes of one interval.
   * @default 60_000
   */
  intervalMs?: number
  /**
   * What `open()` does with a file it cannot restore (a foreign file, another
   * format version, truncated or corrupt): `'refuse'` throws
   * `FST_SESSION_GUARD_SNAPSHOT_INVALID`, so `app.ready()` rejects;
   * `'start-empty'` logs that error, moves the file aside to
   * `<path>.invalid-<epoch ms>` and starts with no session.
   * @default 'refuse'
   */
  onInvalid?: 'refuse' | 'start-empty'
}

/** What a snapshot holds: what the store holds, nothing more (hashes, never a token). */
export interface SnapshotContent {
  /** When it was taken (epoch ms, the store's clock). */
  readonly writtenAt: number
  /** Live sessions, least recently used first. */
  readonly sessions: readonly SessionRecord[]
  /** Live counters, with their keys and window ends. */
  readonly counters: readonly HeldCounter[]
}

/** The snapshot options, checked; `undefined` when there are none. */
export function snapshotSettings (options: SnapshotOptions | undefined): Required<SnapshotOptions> | undefined {
  if (options === undefined) return undefined
  const { path, intervalMs = DEFAULT_INTERVAL_MS, onInvalid = 'refuse' } = section(options, SNAPSHOT_OPTION_NAMES, PATH)
  if (typeof path !== 'string' || path === '') throw new InvalidOptionError(`${PATH}.path`, 'must be a file path')
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new InvalidOptionError(`${PATH}.intervalMs`, 'must be a positive number of ms')
  if (onInvalid !== 'refuse' && onInvalid !== 'start-empty') throw new InvalidOptionError(`${PATH}.onInvalid`, "must be 'refuse' or 'start-empty'")
  return { path, intervalMs, onInvalid }
}

/** A snapshot as bytes: one header line (magic, version, SHA-256 of the body), then the body, JSON. */
export function encodeSnapshot (content: SnapshotContent): Buffer {
  const body = Buffer.from(JSON.stringify(content))
  return Buffer.concat([Buffer.from(`${SNAPSHOT_MAGIC} v${SNAPSHOT_VERSION} sha256=${sha256(body)}\n`), body])
}

/** The content of a snapshot file, or `SnapshotInvalidError` saying why not. */
export function decodeSnapshot (data: Buffer, path: string): SnapshotContent {
  const end = data.subarray(0, MAX_HEADER_BYTES).indexOf('\n')
  const header = end === -1 ? undefined : HEADER.exec(data.subarray(0, end).toString('latin1'))
  if (header === undefined || header === null) {
    const what = data.subarray(0, SNAPSHOT_MAGIC.length).toString('latin1') === SNAPSHOT_MAGIC ? 'its header is damaged' : 'it is not a session snapshot'
    throw new SnapshotInvalidError(path, what)
  }
  const [, version, checksum] = header
  if (Number(version) !== SNAPSHOT_VERSION) {
    throw new SnapshotInvalidError(path, `it is format version ${String(version)}, this release reads version ${SNAPSHOT_VERSION}`)
  }
  const body = data.subarray(end + 1)
  if (sha256(body) !== checksum) throw new SnapshotInvalidError(path, 'its checksum does not match: the file is truncated or corrupt')
  let content: unknown
  try {
    content = JSON.parse(body.toString('utf8'))
  } catch {
    throw new SnapshotInvalidError(path, 'its body is not JSON')
  }
  if (!isContent(content)) throw new SnapshotInvalidError(path, 'its content is not what a snapshot holds')
  return { ...content, sessions: content.sessions.map(sharedDevices()) }
}

/** The snapshot at `path`, or `undefined` when there is no file (a first start). */
export async function readSnapshot (path: string): Promise<SnapshotContent | undefined> {
  let data: Buffer
  try {
    data = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new SnapshotInvalidError(path, `it cannot be read (${String((err as NodeJS.ErrnoException).code)})`)
  }
  return decodeSnapshot(data, path)
}

/**
 * Writes `data` to `path` atomically: to `<path>.tmp` (owner-only), flushed to
 * the disk, renamed over `path`, then the directory flushed, so a crash at any
 * point leaves either the previous snapshot or this one, never half of one.
 */
export async function writeSnapshot (path: string, data: Buffer): Promise<void> {
  const temp = `${path}.tmp`
  const file = await open(temp, 'w', 0o600)
  try {
    await file.writeFile(data)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(temp, path)
  const directory = await open(dirname(path), 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}

/** What the snapshots need of the store: its content now, and a way to load one. */
export interface SnapshotSource {
  contents: (now: number) => SnapshotContent
  restore: (content: SnapshotContent, now: number) => Promise<void>
}

/**
 * The memory store's snapshots: restores the last one on open, writes one
 * every `intervalMs` (never two at once) and a last one on close. The content
 * is taken synchronously, so each snapshot is one consistent moment of the store.
 */
export class Snapshots {
  readonly #settings: Required<SnapshotOptions>
  readonly #source: SnapshotSource
  #context: StoreContext | undefined
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> | undefined

  constructor (settings: Required<SnapshotOptions>, source: SnapshotSource) {
    this.#settings = settings
    this.#source = source
  }

  /** Restores the snapshot, if there is one, then writes one every interval. */
  async open (context: StoreContext): Promise<void> {
    await this.#restore(context)
    // Only now: a store whose snapshot was refused must never write over it on close.
    this.#context = context
    this.#timer ??= setInterval(() => this.#start(), this.#settings.intervalMs).unref()
  }

  /** Writes a snapshot now; one already being written is waited for instead. A failure is logged, never thrown. */
  async save (): Promise<void> {
    this.#start()
    await this.#writing
  }

  /** Starts writing a snapshot, unless one is being written. */
  #start (): void {
    this.#writing ??= this.#write().finally(() => { this.#writing = undefined })
  }

  /** Stops the timer and writes the last snapshot. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    if (this.#context === undefined) return
    await this.#writing
    await this.save()
  }

  async #write (): Promise<void> {
    const context = this.#context as StoreContext
    const { path } = this.#settings
    try {
      await writeSnapshot(path, encodeSnapshot(this.#source.contents(context.now())))
    } catch (err) {
      context.log?.error({ err, path }, 'session guard: the memory store snapshot could not be written')
    }
  }

  async #restore (context: StoreContext): Promise<void> {
    const { path, onInvalid } = this.#settings
    let content: SnapshotContent | undefined
    try {
      content = await readSnapshot(path)
    } catch (err) {
      if (onInvalid === 'refuse') throw err
      const aside = `${path}.invalid-${context.now()}`
      await rename(path, aside)
      context.log?.warn({ err, path, movedTo: aside }, 'session guard: the memory store snapshot was refused; starting empty')
      return
    }
    if (content !== undefined) await this.#source.restore(content, context.now())
  }
}

function sha256 (data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** The records as read back, each distinct device one frozen object shared by its sessions (as `parseDevice` gives them). */
function sharedDevices (): (session: SessionRecord) => SessionRecord {
  const devices = new Map<string, SessionRecord['device']>()
  return (session) => {
    if (session.device === undefined) return session
    const json = JSON.stringify(session.device)
    let device = devices.get(json)
    if (device === undefined) {
      const { type, name, browser, os, model } = session.device
      // Every field present, as DeviceInfo promises, even those JSON left out for being undefined.
      device = Object.freeze({
        type,
        name,
        browser: Object.freeze({ name: browser.name, version: browser.version }),
        os: Object.freeze({ name: os.name, version: os.version }),
        model
      })
      devices.set(json, device)
    }
    return sessionRecord({ ...session, device })
  }
}

/** The fields of a parsed JSON value; none for anything but an object. */
function fieldsOf (value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? value as Record<string, unknown> : {}
}

function isContent (value: unknown): value is SnapshotContent {
  const { writtenAt, sessions, counters } = fieldsOf(value)
  return typeof writtenAt === 'number' && Array.isArray(sessions) && sessions.every(isSession) &&
    Array.isArray(counters) && counters.every(isCounter)
}

function isSession (value: unknown): value is SessionRecord {
  const record = fieldsOf(value)
  return ['id', 'userId', 'fingerprintHash'].every((name) => typeof record[name] === 'string') &&
    ['createdAt', 'lastSeenAt', 'idleExpiresAt', 'absoluteExpiresAt'].every((name) => typeof record[name] === 'number') &&
    typeof record.remembered === 'boolean' &&
    (record.refresh === undefined || isRefresh(record.refresh))
}

function isRefresh (value: unknown): boolean {
  const state = fieldsOf(value)
  return typeof state.hash === 'string' && (state.nextHash === undefined || typeof state.nextHash === 'string') &&
    typeof state.rotatedAt === 'number' && typeof state.rotations === 'number'
}

function isCounter (value: unknown): value is HeldCounter {
  const counter = fieldsOf(value)
  return typeof counter.key === 'string' && ['count', 'firstAt', 'lastAt', 'expiresAt'].every((name) => typeof counter[name] === 'number')
}
