import type { FastifyBaseLogger } from 'fastify'
import { StoreFullError, StoreUnavailableError } from '../errors.js'

/**
 * Failing closed: whatever goes wrong in the store, no request gets through
 * because of it, and the client sees a 503 with a code that names no internals.
 * The cause goes to the log. The plugin's own coded errors pass unchanged.
 */
export function storeFailure (log: FastifyBaseLogger, err: unknown): Error {
  if (err instanceof StoreFullError) return err
  log.error({ err }, 'session guard: the session store failed')
  return new StoreUnavailableError()
}

/** Runs a store call, turning a failure into `storeFailure`. */
export async function storeCall<T> (log: FastifyBaseLogger, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    throw storeFailure(log, err)
  }
}
