import t from 'tap'
import { memoryStore } from '../../lib/stores/memory.js'
import { conformance, historyCases } from '../../lib/testing/index.js'

t.test('the memory store keeps the store contract', async (t) => {
  await conformance(t, () => memoryStore())
})

t.test('the memory store keeps a login history', async (t) => {
  await historyCases(t, () => memoryStore())
})
