import type { Test } from 'tap'
import type { SessionGuardOptions } from '../lib/index.js'
import { build, type Harness } from './helper.js'

/** The app's password check: resolves whether the password is right. */
export type PasswordCheck = (username: string, password: string) => Promise<boolean>

/**
 * An app with a login route the way the example writes it (`POST /password-login`,
 * body `{ username, password }`): check, verify, then fail or succeed.
 * The password `'right'` is right, unless `checkPassword` says otherwise.
 */
export async function withLogin (
  t: Test,
  options: Partial<SessionGuardOptions> = {},
  checkPassword: PasswordCheck = async (_username, password) => password === 'right'
): Promise<Harness> {
  return await build(t, options, (app) => {
    app.post<{ Body: { username: string, password: string } }>('/password-login', async (request, reply) => {
      const { username, password } = request.body
      await app.sessions.loginAttempts.check(request, username)
      if (!await checkPassword(username, password)) {
        await app.sessions.loginAttempts.fail(request, username)
        return await reply.code(401).send({ message: 'Wrong username or password' })
      }
      await app.sessions.loginAttempts.succeed(request, username)
      return await reply.issueSession({ userId: username })
    })
  })
}

/** One login attempt through `app.inject`, from `remoteAddress`. */
export async function attempt (h: Harness, username: string, password = 'wrong', remoteAddress = '203.0.113.7') {
  return await h.app.inject({ method: 'POST', url: '/password-login', payload: { username, password }, remoteAddress })
}
