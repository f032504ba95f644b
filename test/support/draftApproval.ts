/**
 * A draft of `csv_sum` in a fresh home's skills.agent_dir, and an approval filed for it as a
 * passing test run of the agent would file it: for the CLI tests of the review commands.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import type { TestReport } from "../../src/core/testHarness.ts"
import { Approvals, ApprovalsLive } from "../../src/layers/Approvals.ts"
import { AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"

export interface DraftWorkspace {
  readonly home: string
  readonly config: ReturnType<typeof configInside>
  readonly codePath: string
  readonly testPath: string
  readonly code: string
  readonly tests: string
  /** The environment that points the CLI at this home's directories. */
  readonly env: Record<string, string>
}

/** Writes the draft `csv_sum.js` and its tests into a fresh home's skills.agent_dir. */
export const draftWorkspace = (code: string, tests: string): DraftWorkspace => {
  const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-draft-")))
  const config = configInside(home)
  mkdirSync(config.skills.agent_dir, { recursive: true })
  const codePath = join(config.skills.agent_dir, "csv_sum.js")
  const testPath = join(config.skills.agent_dir, "csv_sum.test.js")
  writeFileSync(codePath, code)
  writeFileSync(testPath, tests)
  const env = {
    HOME: home,
    LUALLM_AGENT_STATE_DIR: config.state_dir,
    LUALLM_AGENT_SKILLS_AGENT_DIR: config.skills.agent_dir,
    LUALLM_AGENT_SKILLS_ALLOWED_DIR: config.skills.allowed_dir
  }
  return { home, config, codePath, testPath, code, tests, env }
}

/** Files an approval for the workspace's draft (as written) with `report` as its test results. */
export const fileApproval = (ws: DraftWorkspace, report: TestReport, publicFunctions: ReadonlyArray<string> = ["run"]) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const tested = yield* approvals.keepTested({ code: ws.code, tests: ws.tests })
    return yield* approvals.create({
      skillName: "csv_sum",
      metadata: { name: "csv_sum", version: "1.0.0", description: "sums", dependencies: [], paths: [], urls: [], public_functions: publicFunctions, capabilities: [] },
      codePath: ws.codePath,
      testPath: ws.testPath,
      testReport: report,
      tested,
      taskId: null
    })
  }).pipe(
    Effect.provide(ApprovalsLive.pipe(Layer.provide(AuditTest), Layer.provide(AppConfigFrom(ws.config, { home: ws.home, cwd: ws.home })))),
    Effect.provide(NodeContext.layer)
  )
