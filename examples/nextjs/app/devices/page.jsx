import { redirect } from 'next/navigation'
import { api } from '../../lib/api.js'

/** The devices page, rendered on the server through the API for the signed-in user: no script needed. */
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
            {session.isCurrent ? <span className='badge'>This device</span> : null}
          </li>
        ))}
      </ul>
    </main>
  )
}
