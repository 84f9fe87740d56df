import type { DpopClient } from './dpop.js'
import { variant } from './variants.js'

/**
 * One benchmark server: `node --import tsx bench/server.ts <variant>`, forked
 * by bench/http.ts with an IPC channel. It listens on 127.0.0.1 (a free port),
 * reports `{ type: 'ready', port, headers, dpop? }`, answers `{ type: 'cpu' }` with
 * its own CPU time (for the runner's noise guard), and on `{ type: 'close' }`
 * closes, cleans up after its variant and exits.
 */
export type ServerMessage =
  | { type: 'ready', port: number, headers: Record<string, string>, dpop?: DpopClient }
  | { type: 'cpu', micros: number }

async function main (): Promise<void> {
  const name = process.argv[2]
  if (name === undefined || process.send === undefined) throw new Error('usage: forked by bench/http.ts with a variant name')
  const send = process.send.bind(process)
  const { app, headers, cleanup, dpop } = await variant(name).setup()
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')

  process.on('message', (message: { type: string }) => {
    if (message.type === 'cpu') {
      const { user, system } = process.cpuUsage()
      send({ type: 'cpu', micros: user + system } satisfies ServerMessage)
    } else if (message.type === 'close') {
      // A plain exit: --cpu-prof writes its profile on the way out.
      app.close().then(async () => await cleanup?.()).then(() => process.exit(0), () => process.exit(1))
    }
  })
  // The runner went away (crash, Ctrl-C): do not outlive it.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', port: address.port, headers, ...(dpop === undefined ? {} : { dpop }) } satisfies ServerMessage)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
