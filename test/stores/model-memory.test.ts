import t from 'tap'
import { memoryStore } from '../../lib/index.js'
import { runModel } from './model.js'

// The Redis store runs the same model with one line in its own test file:
// runModel(t, { name: 'redis', factory: () => redisStore({ ... }) })
runModel(t, {
  name: 'memory',
  factory: ({ capacity }) => memoryStore(capacity === undefined ? {} : { max: capacity }),
  capacityEviction: true
})
