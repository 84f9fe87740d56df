import t from 'tap'
import { memoryStore } from '../../lib/stores/memory.js'
import { migration } from '../../lib/testing/index.js'

t.test('the memory store moves sessions and counters in and out', async (t) => {
  await migration(t, () => memoryStore())
})
