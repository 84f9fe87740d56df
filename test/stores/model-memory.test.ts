import t from 'tap'
import { memoryStore } from '../../lib/index.js'
import { runModel } from '../../lib/testing/index.js'

// Hundreds of random sequences: longer than tap's default when the machine is busy.
t.setTimeout(120_000)

// model-redis.test.ts runs the same model against the Redis store.
runModel(t, {
  name: 'memory',
  factory: (_t, _clock, { capacity }) => memoryStore(capacity === undefined ? {} : { max: capacity }),
  capacityEviction: true
})
