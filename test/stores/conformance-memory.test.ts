import t from 'tap'
import { memoryStore } from '../../lib/stores/memory.js'
import { conformance } from '../../lib/testing/index.js'

t.test('the memory store keeps the store contract', async (t) => {
  await conformance(t, () => memoryStore())
})
