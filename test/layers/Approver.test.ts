/**
 * Where the agent's questions to a human go, through each `Approver` layer: an app's handler
 * answers in-process and the task completes in one run; `ApproverQueue` hands questions to the
 * app while other tasks go on; `ApproverPause` pauses a task once per question with the exact
 * command that continues it, and answers given ahead of time (`--yes`, `--allow-exec`) continue
 * it. The exec grant is asked before any node runs, recorded in the task and the audit log, and
 * holds for that task only.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Queue } from "effect"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { Agent } from "../../src/Agent.ts"
import type { AgentConfig } from "../../src/core/config.ts"
import { Approvals } from "../../src/layers/Approvals.ts"
import {
  Answer,
  Approver,
  ApproverFrom,
  ApproverPause,
  ApproverQuestions,
  ApproverQueue,
  type Question,
  withStandingAnswers
} from "../../src/layers/Approver.ts"
import { AuditMemory } from "../../src/layers/Audit.ts"
import { FakeReply, LlmRequests } from "../../src/layers/Llm.ts"
import { State } from "../../src/layers/State.ts"
import { builtinSkillsDir } from "../../src/packageRoot.ts"
import { agentLayerWith, installSkill, testConfig } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const plan = (nodes: ReadonlyArray<Record<string, unknown>>) => JSON.stringify({ nodes })

const doubleSkill = `/* @skill {"name": "double", "version": "1.0.0", "description": "Doubles a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 2 }
`
const doubleTests = `const { run } = require("double")
test("doubles 2", () => { assert.equal(run({ n: 2 }), 4) })
`
/** A model that plans with a missing `double` and drafts it right the first time. */
const draftsDouble = [
  FakeReply.content(plan([{ id: "d", action: "skill", skill_name: "double", skill_args: { n: 21 }, description: "Return twice the number n." }]), {
    when: "Request:"
  }),
  FakeReply.content(doubleSkill, { when: "Write the skill file" }),
  FakeReply.content(doubleTests, { when: "Write double.test.js" })
]

const addSkill = `/* @skill {"name": "add", "version": "1.0.0", "description": "Adds two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a + b }
`
const addPlan = (request: string) => FakeReply.content(plan([{ id: "sum", action: "skill", skill_name: "add", skill_args: { a: 2, b: 3 } }]), { when: request })

/** A config whose tiers are set; the shipped skills (shell_safe) come from the package. */
const configWith = (home: string, tiers: Partial<AgentConfig["approval_tiers"]>): AgentConfig => {
  const base = testConfig(home)
  return { ...base, skills: { ...base.skills, builtin_dir: builtinSkillsDir }, approval_tiers: { ...base.approval_tiers, ...tiers } }
}

/** notes.txt with three lines, and a model that counts them with shell_safe. */
const countsLines = (home: string) => {
  mkdirSync(`${home}/data`, { recursive: true })
  writeFileSync(`${home}/data/notes.txt`, "one\ntwo\nthree\n")
  return [
    FakeReply.content(plan([{ id: "lines", action: "skill", skill_name: "shell_safe", skill_args: { command: "wc", args: ["-l", `${home}/data/notes.txt`] } }]), {
      when: "Request:"
    })
  ]
}

/** An approver that answers with `answer` and keeps every question it was asked. */
const recording = (answer: (question: Question) => Answer) => {
  const asked: Array<Question> = []
  const layer = ApproverFrom((question) => Effect.sync(() => (asked.push(question), answer(question))))
  return { asked, layer }
}

const kinds = (asked: ReadonlyArray<Question>) => asked.map((question) => question._tag)

describe("ApproverFrom: an app answers in-process", () => {
  it.scoped("confirms the plan and approves the draft; the task completes in one run, and the records name the app", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configWith(home, { task_confirmation: "prompt" })
      const app = recording(() => Answer.Yes({ by: "my-app" }))
      const { entries, outcome } = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).run("Double 21")
        return { outcome, entries: yield* (yield* AuditMemory).entries }
      }).pipe(Effect.provide(agentLayerWith(config, draftsDouble, home, app.layer)))
      expect(outcome.task.state).toBe("complete")
      expect(outcome.task.result).toEqual({ d: 42 })
      expect(outcome.paused).toBeNull()
      expect(kinds(app.asked)).toEqual(["ConfirmPlan", "ApproveSkill"])
      const [confirm, review] = app.asked
      expect(confirm).toMatchObject({ _tag: "ConfirmPlan", taskId: outcome.task.id, request: "Double 21", tier: "prompt" })
      expect(review).toMatchObject({ _tag: "ApproveSkill", taskId: outcome.task.id, code: doubleSkill, tests: doubleTests })
      expect(readFileSync(`${config.skills.allowed_dir}/double.js`, "utf8")).toBe(doubleSkill)
      const reasons = entries.flatMap((entry) => (entry.event === "task.transition" ? [String(entry.data["reason"])] : []))
      expect(reasons).toContain("plan confirmed by my-app")
      const resolved = entries.find((entry) => entry.event === "approval.resolve")
      expect(resolved?.data).toMatchObject({ skill: "double", approved: true, reason: "approved by my-app" })
      expect(resolved?.task_id).toBe(outcome.task.id)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a yes to exec grants it to that skill for this task only: recorded in the task and the audit log, and the node runs", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configWith(home, { task_confirmation: "auto" })
      const app = recording((question) => (question._tag === "GrantExec" && question.taskId === first ? Answer.Yes({ by: "my-app" }) : Answer.No({ by: "my-app", reason: "not twice" })))
      let first = ""
      const replies = [...countsLines(home), ...countsLines(home)]
      const { again, done, entries } = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const handle = yield* agent.start("Count the lines of my notes")
        first = handle.id
        const done = yield* handle.await
        const again = yield* agent.run("Count the lines of my notes again")
        return { done, again, entries: yield* (yield* AuditMemory).entries }
      }).pipe(Effect.provide(agentLayerWith(config, replies, home, app.layer)))
      expect(done.task.state).toBe("complete")
      expect(done.task.result).toMatchObject({ lines: { stdout: `3 ${home}/data/notes.txt\n`, code: 0 } })
      expect(done.task.exec_grants).toEqual([{ skill: "shell_safe", by: "my-app", at: expect.any(String) }])
      const [grant] = app.asked
      expect(grant).toMatchObject({ _tag: "GrantExec", skill: "shell_safe", tier: "human", nodes: [{ id: "lines", command: `wc -l ${home}/data/notes.txt`, exec: true }] })
      const granted = entries.filter((entry) => entry.event === "exec.granted")
      expect(granted.map((entry) => [entry.task_id, entry.data])).toEqual([
        [done.task.id, { skill: "shell_safe", by: "my-app", nodes: ["lines"], commands: [`lines: wc -l ${home}/data/notes.txt`] }]
      ])
      // The next task is asked again; a no ends it before any node runs.
      expect(kinds(app.asked)).toEqual(["GrantExec", "GrantExec"])
      expect(again.task.state).toBe("declined")
      expect(again.task.error).toContain("Running commands (exec) was refused to skill shell_safe (not twice)")
      expect(again.task.graph?.nodes.map((node) => [node.status, node.retries])).toEqual([["pending", 0]])
      const execs = entries.filter((entry) => entry.event === "sandbox.exec").map((entry) => entry.task_id)
      expect(execs).toEqual([done.task.id])
      expect(entries.some((entry) => entry.event === "task.declined" && entry.task_id === again.task.id)).toBe(true)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("asks nothing when the tiers are auto", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configWith(home, { task_confirmation: "auto", skill_exec: "auto" })
      const outcome = yield* Effect.flatMap(Agent, (agent) => agent.run("Count the lines of my notes")).pipe(
        Effect.provide(agentLayerWith(config, countsLines(home), home, ApproverFrom((question) => Effect.dieMessage(`asked ${question._tag}`))))
      )
      expect(outcome.task.state).toBe("complete")
      expect(outcome.task.exec_grants).toEqual([])
    }).pipe(Effect.provide(TestPlatform)))
})

describe("ApproverQueue: questions go to the app on a queue", () => {
  it.scopedLive("a task waiting for its answer gives its turn to another, which completes meanwhile; a no with a reason declines the plan", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const base = configWith(home, { task_confirmation: "prompt" })
      // One task steps at a time: the second can only plan while the first waits for its answer.
      const config = { ...base, limits: { ...base.limits, max_concurrent_tasks: 1 } }
      installSkill(config, "add", addSkill)
      const replies = [addPlan("Request: first"), addPlan("Request: second")]
      const result = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const questions = yield* ApproverQuestions
        const first = yield* agent.start("first: add 2 and 3")
        const waiting = yield* Effect.fork(first.await)
        const held = yield* Queue.take(questions)
        const second = yield* agent.start("second: add 2 and 3")
        const asked = yield* Queue.take(questions).pipe(
          Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => "the second task never asked: the first kept its turn while it waited" })
        )
        yield* asked.answer(Answer.Yes({ by: "bob" }))
        const secondDone = yield* second.await
        const firstStillWaiting = Option.isNone(yield* Fiber.poll(waiting))
        yield* held.answer(Answer.No({ by: "alice", reason: "wrong numbers" }))
        const firstDone = yield* Fiber.join(waiting)
        return { held, asked, first, second, secondDone, firstDone, firstStillWaiting }
      }).pipe(Effect.provide(agentLayerWith(config, replies, home, ApproverQueue)))
      expect([result.held.question._tag, result.held.question.taskId]).toEqual(["ConfirmPlan", result.first.id])
      expect(result.asked.question.taskId).toBe(result.second.id)
      expect(result.secondDone.task).toMatchObject({ state: "complete", result: { sum: 5 } })
      expect(result.firstStillWaiting).toBe(true)
      expect(result.firstDone.task.state).toBe("declined")
      expect(result.firstDone.task.error).toContain("The plan was declined (wrong numbers); nothing ran")
      expect(result.firstDone.task.graph?.nodes.map((node) => node.status)).toEqual(["pending"])
    }).pipe(Effect.provide(TestPlatform)))
})

describe("ApproverPause: each question pauses its task once, with the exact command", () => {
  /** The agent over `home`'s saved tasks, its questions answered ahead of time as the CLI's flags do. */
  const standing = (answers: { readonly confirmPlan?: string; readonly grantExec?: string }) =>
    Layer.effect(Approver, Effect.map(Approver, (inner) => withStandingAnswers(inner, answers))).pipe(Layer.provide(ApproverPause))

  it.scoped("the plan waits for --yes, the draft for `approvals approve`; each resume goes on from where it paused", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configWith(home, { task_confirmation: "prompt" })
      const run = <A, E>(effect: Effect.Effect<A, E, Agent | Approvals | State | LlmRequests | AuditMemory>, layer = ApproverPause as Layer.Layer<Approver>) =>
        effect.pipe(Effect.provide(agentLayerWith(config, draftsDouble, home, layer)))

      const first = yield* run(Effect.flatMap(Agent, (agent) => agent.run("Double 21")))
      const id = first.task.id.slice(0, 8)
      expect(first.task.state).toBe("confirmation")
      expect(first.paused).toMatchObject({ reason: "confirmation", next_command: `luallm-agent resume --task ${id} --yes` })
      expect(existsSync(`${config.skills.agent_dir}/double.js`)).toBe(false)

      // Resumed without an answer, it stays paused: no step is used and nothing is logged but the pause.
      const again = yield* run(Effect.gen(function*() {
        const outcome = yield* (yield* Agent).resume()
        return { outcome, entries: yield* (yield* AuditMemory).entries }
      }))
      expect(again.outcome.task).toMatchObject({ state: "confirmation", steps: first.task.steps })
      expect(again.entries.map((entry) => entry.event)).toEqual(["task.resume", "task.paused"])

      const drafted = yield* run(Effect.flatMap(Agent, (agent) => agent.resume()), standing({ confirmPlan: "--yes" }))
      const approvalId = drafted.task.draft?.approval_id ?? ""
      expect(drafted.task.state).toBe("approval")
      expect(drafted.paused).toEqual({
        reason: "approval",
        message: `The drafted skill "double" passes its tests and waits for a human to review and approve it.`,
        next_command: `luallm-agent resume --task ${id}   (or: luallm-agent approvals approve ${approvalId.slice(0, 8)} && luallm-agent resume --task ${id})`
      })
      // --yes never approves a draft.
      const still = yield* run(Effect.flatMap(Agent, (agent) => agent.resume()), standing({ confirmPlan: "--yes", grantExec: "--allow-exec" }))
      expect(still.task.state).toBe("approval")

      const done = yield* run(Effect.gen(function*() {
        yield* (yield* Approvals).resolve(approvalId, true, "approved with `approvals approve`")
        return yield* (yield* Agent).resume()
      }))
      expect(done.task).toMatchObject({ state: "complete", result: { d: 42 } })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a skill that runs commands pauses the task once before any node runs; --allow-exec grants it and the task completes", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const config = configWith(home, { task_confirmation: "auto" })
      const paused = yield* Effect.flatMap(Agent, (agent) => agent.run("Count the lines of my notes")).pipe(
        Effect.provide(agentLayerWith(config, countsLines(home), home, ApproverPause))
      )
      const id = paused.task.id.slice(0, 8)
      expect(paused.task.state).toBe("graph_exec")
      expect(paused.paused?.reason).toBe("exec")
      expect(paused.paused?.next_command).toBe(`luallm-agent resume --task ${id} --allow-exec`)
      expect(paused.paused?.message).toBe(
        `Skill shell_safe runs commands on this machine (to run: lines: wc -l ${home}/data/notes.txt) and needs the exec capability, which approval_tiers.skill_exec ("human") leaves to a human. ` +
          `Grant it for this task only with \`luallm-agent resume --task ${id} --allow-exec\` (or run \`luallm-agent resume --task ${id}\` on a terminal and answer); to grant it to every task, set approval_tiers.skill_exec to "auto". ` +
          `To refuse it, discard the task with \`luallm-agent reset --task ${id}\`.`
      )
      // Never refused: the node did not run at all.
      expect(paused.task.graph?.nodes.map((node) => [node.status, node.retries, node.error ?? null])).toEqual([["pending", 0, null]])

      const done = yield* Effect.gen(function*() {
        const outcome = yield* (yield* Agent).resume()
        return { outcome, entries: yield* (yield* AuditMemory).entries }
      }).pipe(
        Effect.provide(agentLayerWith(config, [], home, Layer.effect(Approver, Effect.map(Approver, (inner) => withStandingAnswers(inner, { grantExec: "--allow-exec" }))).pipe(Layer.provide(ApproverPause))))
      )
      expect(done.outcome.task.state).toBe("complete")
      expect(done.outcome.task.exec_grants.map((grant) => [grant.skill, grant.by])).toEqual([["shell_safe", "--allow-exec"]])
      expect(done.entries.find((entry) => entry.event === "exec.granted")?.data).toMatchObject({ skill: "shell_safe", by: "--allow-exec" })
    }).pipe(Effect.provide(TestPlatform)))

  it.effect("--yes answers a plan under the prompt tier only; under human the question still goes to the approver underneath", () =>
    Effect.gen(function*() {
      const plan = { nodes: [], drafts: [], exec_skills: [] }
      const yes = withStandingAnswers(yield* Approver, { confirmPlan: "--yes" })
      const ask = (tier: "prompt" | "human") => yes.ask({ _tag: "ConfirmPlan", taskId: "t", request: "r", plan, tier })
      expect(yield* ask("prompt")).toEqual(Answer.Yes({ by: "--yes" }))
      expect(yield* ask("human")).toEqual(Answer.Later())
      expect(yield* yes.ask({ _tag: "GrantExec", taskId: "t", skill: "shell_safe", nodes: [], tier: "prompt" })).toEqual(Answer.Later())
    }).pipe(Effect.provide(ApproverPause)))
})
