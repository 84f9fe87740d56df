// Mutation testing of the security-critical code: `npm run mutate`.
// Not part of `npm test` or CI: a full run takes a long while on two cores.
// What it found, and why each surviving mutant is left: docs/security.md, "Mutation testing".

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: [
    'lib/guard.ts',
    'lib/lifecycle.ts',
    'lib/session.ts',
    'lib/crypto.ts',
    'lib/tokens/*.ts',
    'lib/http/fingerprint.ts',
    'lib/http/cookies.ts',
    'lib/http/csrf.ts',
    'lib/http/dpop.ts',
    'lib/http/access-token-source.ts',
    'lib/watch.ts',
    'lib/stores/memory-counters.ts',
    'lib/activity.ts',
    'lib/monitoring/anomaly.ts',
    'lib/monitoring/login-attempts.ts'
  ],
  testRunner: 'tap',
  tap: {
    // Each test file runs on its own under node, TypeScript through tsx (what tap itself does).
    nodeArgs: ['--import', 'tsx', '-r', '{{hookFile}}', '{{testFile}}'],
    // The tests that exercise the files above. Left out: the benchmark, soak, browser and
    // example runs, the built package, and the store-mechanics suites (models, Cluster,
    // several instances, outages), which are slow and reach none of these files' decisions.
    // The store suites reach only session.ts; MUTATE_TESTS=core leaves them out of the initial
    // run (about a minute) when session.ts is not mutated. MUTATE_TESTS=<glob>,<glob> runs only
    // those files: quicker, and the score is then a lower bound (docs/security.md says which).
    testFiles: process.env.MUTATE_TESTS !== undefined && process.env.MUTATE_TESTS !== 'core'
      ? process.env.MUTATE_TESTS.split(',')
      : [
          'test/{anomaly,anomaly-http,client,cookie-policy,cookies,crypto,device,dpop,events,fingerprint,global,guard,key-rotation,lifecycle,limit-tickets,limits,lockout,lockout-network,lockout-race,logging,monitoring,privacy,prometheus,realtime,refresh-tokens,registration,route-options,routes,session,ssr,store-keys,tracing,verified-tokens}.test.ts',
          'test/security/*.test.ts',
          ...(process.env.MUTATE_TESTS === 'core'
            ? []
            : ['test/stores/{absolute-deadline,conformance-memory,eviction-order,memory,redis}.test.ts'])
        ]
  },
  // Per test file: a mutant runs only the files that reach it.
  coverageAnalysis: 'perTest',
  // One test process at a time: the machine is shared. A run of one file:
  // `npx stryker run --mutate lib/crypto.ts` (times per file: docs/security.md).
  concurrency: 1,
  // A loaded machine makes a test file several times slower than in the dry run; without the
  // margin a slow run is reported as a timeout, which counts as detected.
  timeoutMS: 30000,
  // The initial run of every test file takes about four minutes on a busy machine.
  dryRunTimeoutMinutes: 20,
  // `npm run mutate` passes --incremental: only mutants in changed code, or covered by
  // changed tests, run again. The file stays local (reports/ is ignored): it holds a copy of
  // every mutated file and test, would conflict whenever two branches change lib/, and a
  // fresh clone only pays one full run.
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 95, low: 90, break: null },
  ignorePatterns: ['dist', 'coverage', '.tap', 'docs', 'examples', 'reports'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always'
}
