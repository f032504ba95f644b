/**
 * The short crash-safety soak: the bundled CLI SIGKILLed at seeded random moments and resumed
 * to completion (`npm run soak` is the long form, 50 kills). See scripts/soak.ts for the checks.
 */
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import { runSoak, soakPassed, summarize } from "../../scripts/soak.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

describe("crash-safety soak", () => {
  it.scopedLive("a task killed with SIGKILL at 5+ random points resumes to the uninterrupted result, losing and duplicating nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const report = yield* runSoak({ kills: 5, seed: 8, dir, log: () => Effect.void })
      yield* Console.log(summarize(report))
      expect(report.problems).toEqual([])
      expect(soakPassed(report)).toBe(true)
      expect(report.kills).toBeGreaterThanOrEqual(5)
      expect(report.resumes).toBeGreaterThanOrEqual(1)
      expect(report).toMatchObject({ lost: 0, duplicated: 0, corruptStates: 0, badAuditLines: 0, resultMismatches: 0 })
    }).pipe(Effect.provide(TestPlatform)), 120_000) // a dozen CLI processes, each starting its sandbox worker threads
})
