import { createRequire } from 'node:module'
import { InvalidOptionError } from '../../errors.js'

/** The ioredis module. */
export type Ioredis = typeof import('ioredis')

/** How a module is loaded: `require`, or a stand-in for it in tests. */
export type Load = (id: string) => unknown

/**
 * ioredis, an optional peer dependency, for a store that makes its own client
 * (`connection`, `cluster`). It is loaded then, not when the store's module
 * is, so an app that passes a client of its own (iovalkey, say) need not
 * install it; when it is missing, the store is refused as it is made, naming
 * `option`, with what to do.
 */
export function ioredis (option: string, load: Load = createRequire(__filename)): Ioredis {
  try {
    return load('ioredis') as Ioredis
  } catch (err) {
    // Only ioredis itself missing: a module missing inside it is a broken install, and says so itself.
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !(err as Error).message.includes("'ioredis'")) throw err
    throw new InvalidOptionError(option, 'needs the ioredis package, an optional peer dependency of fastify-session-guard: npm i ioredis (or pass a client of your own as "client")')
  }
}
