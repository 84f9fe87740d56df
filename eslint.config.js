'use strict'

// neostandard, as the Fastify org's plugins use it, with TypeScript support.
module.exports = require('neostandard')({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.tap/**', 'examples/nextjs/**']
})
