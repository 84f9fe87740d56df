import t from 'tap'
import { supersedes, type SessionRecord } from '../lib/index.js'

const base: SessionRecord = {
  id: 's1',
  userId: 'alice',
  fingerprintHash: 'h',
  createdAt: 0,
  lastSeenAt: 10,
  idleExpiresAt: 1_000,
  absoluteExpiresAt: 2_000,
  remembered: false
}
const rotated = (rotations: number, lastSeenAt = 10): SessionRecord => ({ ...base, lastSeenAt, refresh: { hash: `r${rotations}`, rotatedAt: 0, rotations } })

t.test('supersedes: more rotations win, then later activity; a copy without refresh state counts none', async (t) => {
  t.equal(supersedes(rotated(2), rotated(1, 99)), true, 'more rotations, however old the activity')
  t.equal(supersedes(rotated(1, 99), rotated(2)), false, 'fewer rotations lose')
  t.equal(supersedes(rotated(1), base), true, 'one rotation beats no refresh state')
  t.equal(supersedes(base, rotated(1)), false, 'no refresh state loses to one rotation')
  t.equal(supersedes(rotated(0, 11), base), true, 'as many (none): the later activity wins')
  t.equal(supersedes(base, { ...base, lastSeenAt: 11 }), false, 'the earlier activity loses')
  t.equal(supersedes(base, base), false, 'an equal copy does not supersede: the import writes it again, changing nothing')
})
