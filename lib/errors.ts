import createError from '@fastify/error'

/**
 * Every error the plugin raises, each with a code under one prefix and the
 * HTTP status it answers with. `docs/errors.md` lists them.
 */

/** A plugin option is missing, of the wrong type or unsafe. Thrown at registration. */
export const InvalidOptionError = createError<[string, string]>(
  'FST_SESSION_GUARD_INVALID_OPTION',
  'Invalid option "%s": %s',
  500,
  TypeError
)

/** The plugin was registered twice in one scope: one scope has one session store and one guard. */
export const AlreadyRegisteredError = createError(
  'FST_SESSION_GUARD_ALREADY_REGISTERED',
  'fastify-session-guard is already registered in this scope',
  500
)

/**
 * The request carries no valid session. One code for every cause, so a client
 * cannot learn which check failed; the precise reason goes to the request log.
 */
export const UnauthorizedError = createError(
  'FST_SESSION_GUARD_UNAUTHORIZED',
  'Authentication required',
  401
)

/**
 * The app's claims for a session (`issueSession`, `regenerateSession`) hold
 * text a store cannot keep: U+0000 or a surrogate without its pair, in a name
 * or a value at any depth (PostgreSQL's `jsonb` refuses both). Nothing was
 * written; the message names the claim, never its value.
 */
export const InvalidClaimsError = createError<[string]>(
  'FST_SESSION_GUARD_INVALID_CLAIMS',
  'Session claims refused: %s',
  400
)

/** The user already holds `maxSessionsPerUser` sessions and `onSessionLimit` is `'reject'`. */
export const SessionLimitError = createError(
  'FST_SESSION_GUARD_SESSION_LIMIT',
  'Too many active sessions for this user',
  409
)

/** A refresh lost a race with a parallel refresh of the same token (inside the grace window). */
export const RefreshConflictError = createError(
  'FST_SESSION_GUARD_REFRESH_CONFLICT',
  'The refresh token was just rotated by another request; retry with the new one',
  409
)

/**
 * A cookie-authenticated request failed the CSRF checks: the message says why
 * (the custom header, by name, is missing; the `Origin` is missing or not allowed).
 */
export const CsrfError = createError<[string]>(
  'FST_SESSION_GUARD_CSRF',
  'Cross-site request refused: %s',
  403
)

/** A session-management route was given the id of no session of the caller's (unknown, or another user's). */
export const SessionNotFoundError = createError(
  'FST_SESSION_GUARD_SESSION_NOT_FOUND',
  'No such session',
  404
)

/** Too many failed logins for this username or IP: retry after the `Retry-After` header's seconds. */
export const LoginLockedError = createError(
  'FST_SESSION_GUARD_LOGIN_LOCKED',
  'Too many failed login attempts; try again later',
  429
)

/** A login refused because an anomaly rule (or the app's `decide` hook) said `'revoke'`. */
export const AnomalyError = createError(
  'FST_SESSION_GUARD_ANOMALY',
  'This sign-in was refused',
  403
)

/** The memory store is full and configured to refuse new sessions rather than evict. */
export const StoreFullError = createError(
  'FST_SESSION_GUARD_STORE_FULL',
  'The session store is full',
  503
)

/** The session store failed or did not answer in time. The guard fails closed. */
export const StoreUnavailableError = createError(
  'FST_SESSION_GUARD_STORE_UNAVAILABLE',
  'The session store is unavailable',
  503
)

/** A method was called in a state where it cannot work (for example `endSession` on an unauthenticated request). */
export const NoSessionError = createError(
  'FST_SESSION_GUARD_NO_SESSION',
  'This request has no authenticated session',
  500
)

/**
 * A memory store snapshot cannot be restored: not a snapshot (a foreign file),
 * another format version, truncated or corrupt, or unreadable. Thrown by
 * `open()`, so `app.ready()` rejects, unless `snapshot.onInvalid` is
 * `'start-empty'`. The file is left as it is.
 */
export const SnapshotInvalidError = createError<[string, string]>(
  'FST_SESSION_GUARD_SNAPSHOT_INVALID',
  'Session snapshot "%s" refused: %s',
  500
)

/** `migrateSessions()` was given a store without a method it needs (an optional one of the store contract). */
export const StoreUnsupportedError = createError<[string]>(
  'FST_SESSION_GUARD_STORE_UNSUPPORTED',
  'The session store does not implement %s',
  500
)

/**
 * `app.sessions.history()` was asked for a page it cannot read: a `limit`
 * that is not a positive integer, or a `before` that is not a cursor (an
 * entry's `id`). A 400, so a route that passes its query string on answers well.
 */
export const InvalidHistoryQueryError = createError<[string]>(
  'FST_SESSION_GUARD_INVALID_HISTORY_QUERY',
  'Invalid history query: %s',
  400
)

/**
 * `app.sessions.history()` or `erase()` was called with no history to read:
 * the plugin was registered with `history: false`, or its store keeps no
 * history (it lacks `appendHistory`, `history` and `eraseHistory`).
 */
export const HistoryOffError = createError<[string]>(
  'FST_SESSION_GUARD_HISTORY_OFF',
  'The login history is off: %s',
  500
)

/**
 * The session awaits a step-up (an anomaly rule decided `'challenge'`), and
 * this route requires full assurance. Sent with `WWW-Authenticate: Bearer
 * error="insufficient_user_authentication"` (RFC 9470): the client runs the
 * app's second factor, whose route (`config: { allowChallenged: true }`)
 * calls `request.completeChallenge()`.
 */
export const StepUpRequiredError = createError(
  'FST_SESSION_GUARD_STEP_UP_REQUIRED',
  'This session must complete a step-up first',
  401
)

/** `app.sessions.answerAlert()` was given an answer other than `'yes'` or `'no'`. */
export const InvalidAlertAnswerError = createError<[string]>(
  'FST_SESSION_GUARD_INVALID_ALERT_ANSWER',
  "Invalid answer to a \"Was this you?\" alert: must be 'yes' or 'no', got %s",
  400
)

/**
 * A session that carries unanswered anomaly flags itself (a sign-in from a
 * new device, a challenged one) answered "yes, it was me" about another: only
 * a session nobody doubts may vouch for one, or two sign-ins of an attacker
 * could vouch for each other. It may still answer "no".
 */
export const UnconfirmedSessionError = createError(
  'FST_SESSION_GUARD_UNCONFIRMED_SESSION',
  'This session awaits confirmation itself and cannot vouch for another',
  403
)

/**
 * A login or refresh carried a `DPoP` proof (RFC 9449) that was refused: bad
 * signature or type, wrong `htm` or `htu`, an `iat` outside the window, a
 * replayed `jti`, or another key than the session's. The token endpoint's
 * answer per RFC 9449 §5 (`invalid_dpop_proof`).
 */
export const InvalidDpopProofError = createError(
  'FST_SESSION_GUARD_INVALID_DPOP_PROOF',
  'The DPoP proof is invalid',
  400
)

/**
 * Nonces are required (`dpop: { nonce: true }`) and the login's or refresh's
 * proof carried none, or an expired one: retry with the `DPoP-Nonce` header
 * of this answer (RFC 9449 §8, `use_dpop_nonce`).
 */
export const UseDpopNonceError = createError(
  'FST_SESSION_GUARD_USE_DPOP_NONCE',
  'A DPoP nonce is required: retry with the one in the DPoP-Nonce header',
  400
)
