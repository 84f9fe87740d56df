import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import t from 'tap'
import sessionGuard, { memoryStore } from '../lib/index.js'
import { SECRET } from './helper.js'

/**
 * The DPoP client of docs/deployment.md, run as written: its `js` block is
 * saved as a module (given `base` and `credentials`, which it says the app
 * provides) and run against a server with the section's routes, on the real clock.
 */

async function section (): Promise<string> {
  const text = await readFile(join(__dirname, '..', 'docs', 'deployment.md'), 'utf8')
  const start = text.indexOf('## Native apps (DPoP)')
  return text.slice(start, text.indexOf('\n## ', start + 1))
}

function blocks (markdown: string, lang: string): string[] {
  return [...markdown.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((match) => match[1] as string)
}

t.test("the docs' DPoP client logs in, calls and refreshes with the docs' routes", async (t) => {
  const [server, client] = blocks(await section(), 'js')
  t.match(server, "app.post('/refresh', async (request, reply) => {\n  const { accessToken, refreshToken, tokenType } = await reply.refreshSession()\n  return { accessToken, refreshToken, tokenType }\n})", 'the docs show the refresh route run here')
  t.match(client, /import \{ SignJWT, base64url, exportJWK, generateKeyPair \} from 'jose'/)

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGuard, { secret: SECRET, dpop: true, store: memoryStore() })
  app.post<{ Body: { userId: string } }>('/login', async (request, reply) => {
    const { accessToken, refreshToken, tokenType } = await reply.issueSession({ userId: request.body.userId })
    return { accessToken, refreshToken, tokenType }
  })
  app.get('/me', { preHandler: app.requireSession }, async (request) => ({ sid: request.authSession!.id, jkt: (request.user as { cnf?: { jkt: string } }).cnf?.jkt }))
  app.post('/refresh', async (request, reply) => {
    const { accessToken, refreshToken, tokenType } = await reply.refreshSession()
    return { accessToken, refreshToken, tokenType }
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })

  const dir = t.testdir({})
  const file = join(dir, 'client.mjs')
  await writeFile(file, `const base = ${JSON.stringify(base)}\nconst credentials = { userId: 'alice' }\n${client!}\nexport { login, me, refreshed, accessToken, refreshToken, jwk }\n`)
  const run = await import(pathToFileURL(file).href) as { login: Response, me: Response, refreshed: Response, accessToken: string, refreshToken: string, jwk: Record<string, unknown> }

  t.equal(run.login.status, 200, 'login with a proof')
  t.equal(run.login.headers.get('set-cookie'), null, 'no cookie')
  t.equal(run.me.status, 200, 'a call with a proof bound to the token (ath)')
  const { jkt } = await run.me.json() as { jkt: string }
  const { calculateJwkThumbprint } = await import('jose')
  t.equal(jkt, await calculateJwkThumbprint(run.jwk as Parameters<typeof calculateJwkThumbprint>[0]), "the session is bound to the client's key")
  t.equal(run.refreshed.status, 200, 'a refresh with the body token and a proof')
  t.type(run.refreshToken, 'string')
  const sessions = await app.sessions.list('alice')
  t.equal(sessions.length, 1, 'one session, refreshed in place')
  t.equal(sessions[0]?.refresh?.rotations, 1, 'rotated once')
})
