/**
 * The task cluster across processes, on loopback: one PostgreSQL server, `luallm-agent worker`
 * processes (the bundled CLI, replaying a recorded model), tasks sent to them, and one runner
 * killed with SIGKILL while it drives tasks (scripts/clusterSoak.ts; `npm run cluster-soak`
 * runs the long form, 20 tasks, as its own CI step).
 */
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import { runClusterSoak, summarizeClusterSoak } from "../../scripts/clusterSoak.ts"
import { postgresForSuite, postgresMissing } from "../support/postgresSuite.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const pg = postgresForSuite({ fsync: false })

describe.skipIf(postgresMissing !== undefined)("the task cluster", () => {
  it.scopedLive("6 tasks on 3 runners, one runner killed mid-run: every task completes exactly once, its transitions one chain, re-runs only of unsaved nodes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const url = yield* Effect.flatMap(pg.server, (server) => Effect.orDie(server.createDatabase))
      const report = yield* runClusterSoak({ tasks: 6, runners: 3, nodes: 4, nodeMs: 150, dir, url, log: Console.log })
      yield* Console.log(summarizeClusterSoak(report))
      expect(report.problems).toEqual([])
      expect(report.heldByKilled).toBeGreaterThan(0)
      expect(report.failoverMs).toBeGreaterThanOrEqual(0)
      expect(report.drives).toBeGreaterThan(report.tasks)
    }).pipe(Effect.provide(TestPlatform)), 180_000)
})
