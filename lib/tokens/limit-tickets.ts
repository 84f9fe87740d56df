import { sha256 } from '../crypto.js'
import { TimedJwt, type Signer } from './jwt.js'

/** What a session-limit ticket carries: the refused login, bound to its fingerprint (or DPoP key) and to the sessions it saw. */
export interface LimitTicket {
  userId: string
  claims?: Record<string, unknown>
  remember: boolean
  /** The anomaly flags the refused login earned: the session it completes carries them. */
  flags: readonly string[]
  /** The refused login asked to remember its device (`issueSession({ rememberDevice: true })`). */
  rememberDevice?: boolean
  /** What the refused session would have been bound to: the hash of the fingerprint cookie set with the 409, or `dpop:<jkt>` for a DPoP login. */
  fingerprintHash: string
  /** Hash of the ids of the sessions the 409 offered (the user's, or those of `deviceType`). */
  activeHash: string
  /** Set when the limit of this device type refused: only its sessions may be signed out to resolve it. */
  deviceType?: string
}

/** A ticket that verified, with the store counter that makes it single-use. */
export interface VerifiedLimitTicket extends LimitTicket {
  /**
   * `store.increment(use.key, use.windowMs)`: only the first use of the ticket
   * counts 1. The key is derived from the ticket's signature (one spelling per
   * ticket, see `TimedJwt.payload`). The window outlives the ticket by its own
   * lifetime: a request that verified the ticket a moment before it expired, or
   * on an instance whose clock runs behind, still finds the counter there (Redis
   * drops the key by its own clock).
   */
  readonly use: { readonly key: string, readonly windowMs: number }
}

const TICKET_TYPE = 'sg-limit'
/**
 * The `typ` header of a ticket, its own: an access token (`at+jwt`), or any
 * other JWT signed with the same key (`JWT`, as most libraries write), never
 * passes as a ticket, and a ticket passes as nothing else.
 */
const TICKET_HEADER_TYPE = 'sg-limit+jwt'

/**
 * Short-lived signed tickets that let a login refused at the session limit be
 * completed by signing one session out. Signed with the access-token key but
 * typed apart (`sg-limit+jwt` in the header, `sg-limit` in the payload), and
 * without `sid`, so neither can pass for the other (the payload's `typ` alone
 * is not enough: an app's claims may set it on an access token).
 * Single use: the lifecycle consumes a ticket with one atomic store step
 * (`use`) before it signs anything out, so parallel requests with one ticket,
 * even naming different sessions, complete one login between them.
 */
export class LimitTickets extends TimedJwt {
  constructor (keys: Signer, ttlMs: number) {
    super(keys, ttlMs, TICKET_HEADER_TYPE)
  }

  sign (ticket: LimitTicket, now: number): string {
    return this.signClaims({
      typ: TICKET_TYPE,
      sub: ticket.userId,
      clm: ticket.claims,
      rem: ticket.remember,
      flg: ticket.flags.length === 0 ? undefined : ticket.flags,
      rdv: ticket.rememberDevice === true ? true : undefined,
      fph: ticket.fingerprintHash,
      act: ticket.activeHash,
      dty: ticket.deviceType
    }, now)
  }

  verify (token: string, now: number): VerifiedLimitTicket | undefined {
    const payload = this.payload(token)
    // An access token always has `sid`, and an app's claims may set `typ`: without
    // the `sid` check an access token could pass as a ticket.
    if (payload === undefined || payload.typ !== TICKET_TYPE || payload.sid !== undefined) return undefined
    if (typeof payload.exp !== 'number' || now >= payload.exp * 1000) return undefined
    return {
      userId: payload.sub as string,
      claims: payload.clm as Record<string, unknown> | undefined,
      remember: payload.rem === true,
      // Signed with the rest: a client cannot strip them.
      flags: Array.isArray(payload.flg) ? payload.flg as string[] : [],
      rememberDevice: payload.rdv === true,
      fingerprintHash: payload.fph as string,
      activeHash: payload.act as string,
      ...(typeof payload.dty === 'string' ? { deviceType: payload.dty } : {}),
      use: { key: `limit-ticket:${sha256(token.slice(token.lastIndexOf('.') + 1))}`, windowMs: payload.exp * 1000 - now + this.lifetimeMs }
    }
  }
}

/** A digest of a set of session ids, whatever their order. */
export function idSetHash (ids: Iterable<string>): string {
  return sha256([...ids].sort().join(' '))
}
