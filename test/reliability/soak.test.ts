/**
 * The short crash-safety soak: the bundled CLI SIGKILLed at seeded random moments and resumed
 * to completion, against the file store and against the Postgres store on a real server
 * (`npm run soak` is the long form, 50 kills; `.ci/run` runs it on both stores). See
 * scripts/soak.ts for the checks.
 */
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import { runSoak, soakPassed, summarize } from "../../scripts/soak.ts"
import { postgresForSuite, postgresMissing } from "../support/postgresSuite.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const pg = postgresForSuite({ fsync: false })
if (postgresMissing !== undefined) console.log(`skipping the soak on the Postgres store: ${postgresMissing}`)

const soak = (store: Effect.Effect<string>) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const report = yield* runSoak({ kills: 5, seed: 8, dir, store: yield* store, log: () => Effect.void })
    yield* Console.log(summarize(report))
    expect(report.problems).toEqual([])
    expect(soakPassed(report)).toBe(true)
    expect(report.kills).toBeGreaterThanOrEqual(5)
    expect(report.resumes).toBeGreaterThanOrEqual(1)
    expect(report).toMatchObject({ lost: 0, duplicated: 0, corruptStates: 0, badAuditLines: 0, resultMismatches: 0 })
  }).pipe(Effect.provide(TestPlatform))

describe("crash-safety soak", () => {
  // A time budget for a dozen CLI processes, each starting its sandbox worker threads.
  it.scopedLive("file store: a task killed with SIGKILL at 5+ random points resumes to the uninterrupted result, losing and duplicating nothing", () =>
    soak(Effect.succeed("file")), 120_000)

  it.scopedLive.skipIf(postgresMissing !== undefined)(
    "Postgres store: a task killed with SIGKILL at 5+ random points resumes to the uninterrupted result, losing and duplicating nothing",
    () => soak(Effect.flatMap(pg.server, (server) => Effect.orDie(server.createDatabase))),
    120_000
  )
})
