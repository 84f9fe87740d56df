import { redirect } from 'next/navigation'
import { api } from '../../lib/api.js'

/**
 * The devices page, rendered on the server through the API for the signed-in
 * user: no script needed. Each other device has a "Sign out" button, and this
 * one a "Sign out of this device": plain forms, posted to route handlers.
 */
export default async function Devices () {
  const [me, list] = await Promise.all([api('/me'), api('/sessions')])
  if (me.status === 401 || list.status === 401) redirect('/login')
  if (!me.ok || !list.ok) throw new Error(`the API answered ${me.status} and ${list.status}`)
  const { userId } = await me.json()
  const { sessions } = await list.json()
  return (
    <main>
      <h1>Your devices</h1>
      <p id='who'>Signed in as {userId}</p>
      <ul id='devices'>
        {sessions.map((session) => (
          <li className='device' key={session.id}>
            <span className='label'>{session.device?.name ?? 'Unknown device'}</span>
            {session.isCurrent ? <span className='badge'>This device</span> : <SignOut id={session.id} />}
          </li>
        ))}
      </ul>
      <form method='post' action='/auth/logout'>
        <button type='submit'>Sign out of this device</button>
      </form>
    </main>
  )
}

/** A plain form: the route handler checks its `Origin` and adds the API's CSRF header. */
function SignOut ({ id }) {
  return (
    <form method='post' action='/auth/revoke'>
      <input type='hidden' name='id' value={id} />
      <button type='submit'>Sign out</button>
    </form>
  )
}
