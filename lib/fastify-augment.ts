import type { Guard, TokenExtractor } from './guard.js'
import type { IssuedSession, IssueSessionInput } from './lifecycle.js'
import type { CompleteChallengeOptions } from './remembered-devices.js'
import type { SessionManager } from './manager.js'
import type { SessionRecord } from './session.js'
import type { SessionWatch, WatchSessionOptions } from './watch.js'
// `request.user` and its typing (the `FastifyJWT` interface) come from @fastify/jwt.
import '@fastify/jwt'

/**
 * Exported as `FastifyJWT`: it types `request.user` (and any other member of
 * @fastify/jwt's `FastifyJWT`, which extends it). An app augments it through
 * this package, which it can always name, even where @fastify/jwt is not
 * installed at its top level (pnpm):
 *
 *   declare module 'fastify-session-guard' {
 *     interface FastifyJWT { user: AccessClaims & { role: 'admin' | 'member' } }
 *   }
 */
export interface SessionGuardJWT {}

declare module '@fastify/jwt' {
  interface FastifyJWT extends SessionGuardJWT {}
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The guard, for `preHandler` or `onRequest`: `{ preHandler: app.requireSession }`. */
    requireSession: Guard
    /** The management API and event stream. */
    sessions: SessionManager
  }

  interface FastifyRequest {
    /** The request's session, set by the guard; `null` before it runs or on a public route. */
    authSession: SessionRecord | null
    /** Revokes this request's session and clears its cookies (logout). */
    endSession (reply: FastifyReply): Promise<void>
    /**
     * Replaces this request's session with a new id, fingerprint and tokens
     * (after a privilege change), optionally with new claims.
     */
    regenerateSession (reply: FastifyReply, claims?: Record<string, unknown>): Promise<IssuedSession>
    /**
     * After the app's second factor: lifts this request's session out of its
     * step-up, and makes its device and country known for the user (as
     * `app.sessions.trustDevice` does). Resolves whether the session was live.
     * With `reply` and `{ rememberDevice: true }` (the `rememberDevice` option),
     * also writes the "Remember this device" cookie.
     */
    completeChallenge (reply?: FastifyReply, options?: CompleteChallengeOptions): Promise<boolean>
    /**
     * Re-checks this request's session while a long-lived connection (a
     * WebSocket, an event stream) is open: every `every` (default 30 s) it
     * reads the session back and calls `onEnd` once it is revoked, expired or
     * challenged (a step-up, unless the route has `allowChallenged`), for the handler to close the socket or end the stream. It stops with
     * the request's response (a WebSocket's: when the socket closes).
     */
    watchSession (options: WatchSessionOptions): SessionWatch
  }

  interface FastifyReply {
    /** Creates a session for an authenticated user, sets its cookies, and returns its access token. */
    issueSession (input: IssueSessionInput): Promise<IssuedSession>
    /** Trades the request's refresh token for new tokens (rotation with theft detection). */
    refreshSession (): Promise<IssuedSession>
  }

  interface FastifyContextConfig {
    /** With the `global` option: leave this route unguarded. */
    public?: boolean
    /**
     * Let a challenged session (one awaiting a step-up) through the guard on
     * this route: the second factor's own routes, a logout. Other guarded
     * routes answer it `FST_SESSION_GUARD_STEP_UP_REQUIRED`.
     */
    allowChallenged?: boolean
    /**
     * Where the guard finds the access token on this route, before
     * `Authorization` (a WebSocket's `Sec-WebSocket-Protocol`, an event
     * stream's query): overrides the plugin's `extractToken`. Its token is
     * checked as the plugin's is, and as a cookie-carried one: the CSRF
     * header and an allowed `Origin` on an unsafe method.
     */
    extractToken?: TokenExtractor
  }
}
