/** 2026-01-01T00:00:00Z: the suites run on a clock they move themselves, from here. */
export const EPOCH = Date.UTC(2026, 0, 1)

/** A clock the test moves forward by hand. Pass `read` wherever a `Clock` is wanted. */
export class TestClock {
  now = EPOCH
  readonly read = (): number => this.now
  advance (ms: number): void { this.now += ms }
}
