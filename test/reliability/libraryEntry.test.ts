/**
 * The library entry is enough to embed the agent: everything below comes from the package's
 * own name, nothing from src/ paths. package.json `exports` gives runtimes dist/index.js (built
 * by `prepare` and the tests' global setup) and TypeScript dist/types; in this repository tsc
 * reads the sources instead (tsconfig `paths`). test/reliability/packInstall.test.ts checks the
 * same from a tarball installed into an app.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import {
  Agent,
  agentWithApprover,
  Answer,
  AppConfigFrom,
  ApproverFrom,
  AuditMemory,
  AuditTest,
  configInside,
  FakeReply,
  LlmFake,
  LuallmTest,
  type Question,
  Task
} from "luallm-agent"
import { tempDir, TestPlatform } from "../support/tmp.ts"

describe("the library entry", () => {
  it.scoped("an app wires the agent from the package's exports alone, confirms its plan and runs a task", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configInside(home)
      mkdirSync(config.skills.allowed_dir, { recursive: true })
      writeFileSync(`${config.skills.allowed_dir}/add.js`, `/* @skill {"name": "add", "version": "1.0.0", "public_functions": ["run"]} */
export function run({ a, b }) { return a + b }
`)
      const plan = JSON.stringify({ nodes: [{ id: "sum", action: "skill", skill_name: "add", skill_args: { a: 40, b: 2 } }] })
      const asked: Array<Question> = []
      const approver = ApproverFrom((question) => Effect.sync(() => (asked.push(question), Answer.Yes({ by: "the app" }))))
      const app = agentWithApprover(approver).pipe(
        Layer.provideMerge(LlmFake([FakeReply.content(plan)])),
        Layer.provideMerge(LuallmTest({ servers: [] })),
        Layer.provideMerge(AuditTest),
        Layer.provideMerge(AppConfigFrom(config, { home, cwd: home })),
        Layer.provideMerge(NodeContext.layer)
      )
      const { events, outcome } = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Add 40 and 2")
        const events = (yield* (yield* AuditMemory).entries).map((entry) => entry.event)
        return { outcome, events }
      }).pipe(Effect.provide(app))
      expect(outcome.task.state).toBe("complete")
      expect(outcome.task.result).toEqual({ sum: 42 })
      expect(Schema.is(Task)(outcome.task)).toBe(true)
      expect(events).toContain("task.complete")
      expect(asked.map((question) => question._tag)).toEqual(["ConfirmPlan"])
    }).pipe(Effect.provide(TestPlatform)))

  it("plain Node (no TypeScript loader) imports the built library by the package's name", () => {
    const script = "import { Agent, AgentDefault, configInside } from 'luallm-agent'; " +
      "console.log([typeof Agent, typeof AgentDefault, typeof configInside].join(' '))"
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: process.cwd(), encoding: "utf8" })
    expect(result.stderr).toBe("")
    expect(result.stdout.trim()).toBe("function object function")
  })
})
