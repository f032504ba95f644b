/**
 * The Promise facade, used as an app without Effect uses it: `createAgent(options)` over a
 * real OpenAI-compatible server on 127.0.0.1 (or a replayed cassette), callbacks for progress
 * and approvals, tagged errors as rejections.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { Agent, AgentDefault } from "../src/Agent.ts"
import { createAgent, type ApprovalRequest, type CreateAgentOptions } from "../src/createAgent.ts"
import type { AgentConfig } from "../src/core/config.ts"
import { AuditTest } from "../src/layers/Audit.ts"
import { AppConfigFrom, configInside } from "../src/layers/Config.ts"
import { FakeReply, LlmLive } from "../src/layers/Llm.ts"
import { HttpClientRecord } from "../src/layers/llm/cassette.ts"
import { ScriptedServer } from "../src/layers/llm/scripted.ts"
import { LuallmTest } from "../src/layers/Luallm.ts"
import type { Progress } from "../src/Agent.ts"
import { openAiServer } from "./support/openaiServer.ts"
import { tempDir, TestPlatform } from "./support/tmp.ts"

const doubleSkill = `/* @skill {"name": "double", "version": "1.0.0", "description": "Doubles a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 2 }
`
const doubleTests = `const { run } = require("double")
test("doubles 2", () => { assert.equal(run({ n: 2 }), 4) })
test("doubles 0", () => { assert.equal(run({ n: 0 }), 0) })
`
const doublePlan = JSON.stringify({
  nodes: [{ id: "d", action: "skill", skill_name: "double", skill_args: { n: 21 }, description: "Return twice the number n." }]
})

/** The model's side of drafting `double`, by what each prompt asks for. */
const draftingModel = (message: string): string =>
  message.includes("Request:")
    ? doublePlan
    : message.includes("Write the skill file")
    ? "```js\n" + doubleSkill + "```"
    : message.includes("Write double.test.js")
    ? doubleTests
    : `You said: ${message.slice(0, 40)}`

/** An app's config: plans confirmed by `onApproval` (the default tier), or run at once with `confirm: "auto"`. */
const appConfig = (home: string, confirm: "auto" | "prompt" = "prompt"): AgentConfig => {
  const base = configInside(home, { allowedPaths: [`${home}/data/**`] })
  return { ...base, approval_tiers: { ...base.approval_tiers, task_confirmation: confirm } }
}

/** The questions an `onApproval` was asked, by kind and subject. */
const subjects = (asked: ReadonlyArray<ApprovalRequest>) =>
  asked.map((question) =>
    question._tag === "ApproveSkill" ? `skill ${question.approval.skill_name}` : question._tag === "GrantExec" ? `exec ${question.skill}` : `plan ${question.request}`
  )

const promise = <A>(make: () => Promise<A>) => Effect.promise(make)
const rejection = (make: () => Promise<unknown>) =>
  Effect.promise(() => make().then(() => ({ _tag: "resolved", message: "" }), (error: { _tag: string; message: string }) => error))

/** An agent that is closed when the test's scope closes. */
const scopedAgent = (options: CreateAgentOptions) =>
  Effect.acquireRelease(Effect.sync(() => createAgent(options)), (agent) => Effect.promise(() => agent.close()))

describe("createAgent (Promises and callbacks)", () => {
  it.scoped("resume(id, { retryFailed: true }) plans a task again whose skill a human rejected, and it completes once approved", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      let approve = false
      const agent = yield* scopedAgent({ config: appConfig(home), llm: { baseUrl: server.url }, onApproval: (question) => question._tag === "ConfirmPlan" || approve })
      const failed = yield* promise(() => agent.run("Double 21"))
      expect(failed.task.state).toBe("failed")
      expect(failed.task.error).toContain(`--task ${failed.task.id.slice(0, 8)} --retry-failed`)
      approve = true
      const retried = yield* promise(() => agent.resume(failed.task.id, { retryFailed: true }))
      expect(retried.task).toMatchObject({ id: failed.task.id, state: "complete", result: { d: 42 } })
      const again = yield* rejection(() => agent.resume(failed.task.id, { retryFailed: true }))
      expect(again._tag).toBe("NothingToRetry")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("asks onApproval to confirm the plan, then about the draft with its code and tests; yes to both completes the task in one await", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const asked: Array<ApprovalRequest> = []
      const progress: Array<Progress> = []
      const agent = yield* scopedAgent({
        config: appConfig(home),
        llm: { baseUrl: server.url },
        onApproval: (request) => {
          asked.push(request)
          return Promise.resolve(true)
        },
        onProgress: (event) => progress.push(event)
      })
      const outcome = yield* promise(() => agent.run("Double 21"))
      expect(outcome.task.state).toBe("complete")
      expect(outcome.task.result).toEqual({ d: 42 })
      expect(subjects(asked)).toEqual(["plan Double 21", "skill double"])
      const [plan, draft] = asked
      if (plan?._tag !== "ConfirmPlan" || draft?._tag !== "ApproveSkill") throw new Error("asked the wrong questions")
      // The plan is confirmed before anything is drafted: it names the skill to draft.
      expect(plan.tier).toBe("prompt")
      expect(plan.plan.drafts).toEqual([{ name: "double", purpose: "Return twice the number n." }])
      expect(plan.plan.nodes).toMatchObject([{ id: "d", action: "skill", uses: "double", drafted: true, exec: false }])
      expect(draft.code).toBe(doubleSkill)
      expect(draft.tests).toBe(doubleTests)
      expect(draft.approval.test_report).toMatchObject({ total: 2, passed: 2, failed: 0 })
      expect(readFileSync(`${home}/skills/double.js`, "utf8")).toBe(doubleSkill)
      const transitions = progress.flatMap((event) => (event._tag === "Transition" ? [event.to] : []))
      expect(transitions).toEqual(expect.arrayContaining(["planning", "confirmation", "skill_draft", "approval", "graph_exec", "complete"]))
      expect(progress.some((event) => event._tag === "LlmCall" && event.model === "test-model")).toBe(true)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("false to a draft rejects it: the task fails with the app's no and nothing is promoted", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const agent = yield* scopedAgent({ config: appConfig(home), llm: { baseUrl: server.url }, onApproval: (question) => question._tag !== "ApproveSkill" })
      const outcome = yield* promise(() => agent.run("Double 21"))
      expect(outcome.task.state).toBe("failed")
      expect(outcome.task.error).toContain("rejected by the app (onApproval)")
      expect(existsSync(`${home}/skills/double.js`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("false to the plan ends the task declined: nothing is drafted or run", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const asked: Array<ApprovalRequest> = []
      const agent = yield* scopedAgent({ config: appConfig(home), llm: { baseUrl: server.url }, onApproval: (question) => asked.push(question) < 0 })
      const outcome = yield* promise(() => agent.run("Double 21"))
      expect(subjects(asked)).toEqual(["plan Double 21"])
      expect(outcome.task.state).toBe("declined")
      expect(outcome.paused).toBeNull()
      expect(outcome.task.error).toContain("The plan was declined; nothing ran and no skill was drafted.")
      expect(existsSync(`${home}/drafts/double.js`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("without onApproval the task pauses at each question; resume() on an agent with onApproval asks and completes it", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const first = createAgent({ config: appConfig(home), llm: { baseUrl: server.url } })
      const paused = yield* promise(() => first.run("Double 21"))
      yield* promise(() => first.close())
      expect(paused.task.state).toBe("confirmation")
      expect(paused.paused).toMatchObject({ reason: "confirmation", next_command: `luallm-agent resume --task ${paused.task.id.slice(0, 8)} --yes` })
      expect(existsSync(`${home}/drafts/double.js`)).toBe(false)

      const asked: Array<ApprovalRequest> = []
      const second = yield* scopedAgent({ config: appConfig(home), llm: { baseUrl: server.url }, onApproval: (question) => asked.push(question) > 0 })
      const done = yield* promise(() => second.resume())
      expect(subjects(asked)).toEqual(["plan Double 21", "skill double"])
      expect(done.task.id).toBe(paused.task.id)
      expect(done.task.state).toBe("complete")
      expect(done.task.result).toEqual({ d: 42 })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("an onApproval that throws or answers other than true/false leaves the draft pending, with ApprovalCallbackFailed", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const throwing = createAgent({
        config: appConfig(home, "auto"),
        llm: { baseUrl: server.url },
        onApproval: () => Promise.reject(new Error("review service down"))
      })
      const thrown = yield* rejection(() => throwing.run("Double 21"))
      yield* promise(() => throwing.close())
      expect(thrown._tag).toBe("ApprovalCallbackFailed")
      expect(thrown.message).toMatch(/^The app's approver failed to answer about the drafted skill double \(approval [0-9a-f]{8}\): it threw review service down\./)

      const vague = yield* scopedAgent({
        config: appConfig(home, "auto"),
        llm: { baseUrl: server.url },
        // A JavaScript app can return anything: only true or false decides.
        onApproval: (() => "yes") as unknown as () => boolean
      })
      const [paused] = (yield* promise(() => vague.tasks())).tasks
      expect(thrown.message).toContain(`then continue it with resume("${paused?.id.slice(0, 8)}")`)
      const answered = yield* rejection(() => vague.resume(paused?.id))
      expect(answered._tag).toBe("ApprovalCallbackFailed")
      expect(answered.message).toContain(`it returned "yes", not true or false`)
      expect(existsSync(`${home}/skills/double.js`)).toBe(false)
      expect((yield* promise(() => vague.tasks())).tasks.map((task) => task.state)).toEqual(["approval"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("plan() returns the plan with the skill to draft and saves no task", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })
      const agent = yield* scopedAgent({ config: appConfig(home), llm: { baseUrl: server.url }, onApproval: () => Promise.reject(new Error("never asked")) })
      const preview = yield* promise(() => agent.plan("Double 21"))
      expect(preview.task.state).toBe("confirmation")
      expect(preview.plan).toMatchObject({ drafts: [{ name: "double" }], exec_skills: [], nodes: [{ id: "d", uses: "double", drafted: true }] })
      expect((yield* promise(() => agent.tasks())).tasks).toEqual([])
      expect(existsSync(`${home}/drafts/double.js`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("rejects with the tagged error itself: a bad setting, an unknown task, a closed agent", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const server = yield* openAiServer({ reply: draftingModel })

      const misconfigured = createAgent({ config: { limits: { max_task_steps: 0 } }, llm: { baseUrl: server.url } })
      const invalid = yield* rejection(() => misconfigured.run("Double 21"))
      yield* promise(() => misconfigured.close())
      expect(invalid._tag).toBe("ConfigInvalid")
      expect(invalid.message).toContain("limits.max_task_steps: expected a positive integer, got 0 (from the app's settings)")

      const agent = createAgent({ config: appConfig(home, "auto"), llm: { baseUrl: server.url } })
      yield* promise(() => agent.run("Double 21"))
      const unknown = yield* rejection(() => agent.resume("ffffffff"))
      expect(unknown._tag).toBe("TaskNotFound")
      expect(unknown.message).toContain("No task ffffffff")
      yield* promise(() => agent.close())
      const closed = yield* rejection(() => agent.resume())
      expect(closed._tag).toBe("AgentClosed")
      expect(closed.message).toContain("resume() was called after close()")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("start resolves with the task's id at once; two tasks run side by side, each with its own progress and outcome; reset discards one by id", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      // Each task plans one llm_call node whose answer names the task.
      const server = yield* openAiServer({
        reply: (message) => {
          const name = /Greet as \[(\w+)\]/.exec(message)?.[1] ?? /Say hello as \[(\w+)\]/.exec(message)?.[1] ?? "?"
          return message.includes("Request:")
            ? JSON.stringify({ nodes: [{ id: "say", action: "llm_call", prompt_template: `Say hello as [${name}].` }] })
            : `hello from ${name}`
        }
      })
      const everything: Array<Progress> = []
      const agent = yield* scopedAgent({ config: appConfig(home, "auto"), llm: { baseUrl: server.url }, onProgress: (event) => everything.push(event) })
      const own = { a: [] as Array<Progress>, b: [] as Array<Progress> }
      const a = yield* promise(() => agent.start("Greet as [a]", { onProgress: (event) => own.a.push(event) }))
      const b = yield* promise(() => agent.start("Greet as [b]", { onProgress: (event) => own.b.push(event) }))
      expect(a.id).not.toBe(b.id)
      const [doneA, doneB] = yield* promise(() => Promise.all([a.outcome, b.outcome]))
      expect([doneA.task.id, doneA.task.result]).toEqual([a.id, { say: "hello from a" }])
      expect([doneB.task.id, doneB.task.result]).toEqual([b.id, { say: "hello from b" }])
      for (const events of [own.a, own.b]) {
        expect(events.flatMap((event) => (event._tag === "Transition" ? [event.to] : []))).toEqual(["planning", "graph_exec", "complete"])
      }
      // The agent's callback heard both tasks.
      expect(everything.filter((event) => event._tag === "Transition" && event.to === "complete")).toHaveLength(2)
      expect((yield* promise(() => agent.tasks())).tasks.map((task) => task.id).sort()).toEqual([a.id, b.id].sort())

      const reset = yield* promise(() => agent.reset(a.id.slice(0, 8)))
      expect(reset).toEqual({ id: a.id, state: "complete", rejectedApprovals: [] })
      expect((yield* promise(() => agent.tasks())).tasks.map((task) => task.id)).toEqual([b.id])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reads a config file given by path, and replays a recorded session with llm.replay", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      // Any URL: the scripted server answers every host, and the replay matches what was recorded.
      const config = { ...appConfig(home, "auto"), llm: { ...appConfig(home).llm, base_url: "http://127.0.0.1:9" } }
      const cassette = `${home}/session.jsonl`
      const replies = [
        FakeReply.content(JSON.stringify({ nodes: [{ id: "say", action: "llm_call", prompt_template: "Say hello." }] }), { when: "Request:" }),
        FakeReply.content("Hello!", { when: "Say hello." })
      ]
      // Record the session through the Effect API, then forget the task it left behind.
      const recorded = yield* Effect.flatMap(Agent, (agent) => agent.run("Greet me")).pipe(
        Effect.provide(AgentDefault.pipe(
          Layer.provideMerge(LlmLive.pipe(Layer.provide(HttpClientRecord(cassette)), Layer.provide(ScriptedServer(replies, { model: "test-model" })))),
          Layer.provideMerge(LuallmTest({ servers: [] })),
          Layer.provideMerge(AuditTest),
          Layer.provideMerge(AppConfigFrom(config, { home, cwd: home })),
          Layer.provideMerge(TestPlatform)
        ))
      )
      expect(recorded.task.result).toEqual({ say: "Hello!" })
      rmSync(`${home}/state`, { recursive: true })

      mkdirSync(`${home}/etc`)
      writeFileSync(`${home}/etc/agent.json`, JSON.stringify(config))
      const agent = yield* scopedAgent({ config: `${home}/etc/agent.json`, llm: { replay: cassette } })
      const replayed = yield* promise(() => agent.run("Greet me"))
      expect(replayed.task.state).toBe("complete")
      expect(replayed.task.result).toEqual({ say: "Hello!" })
      expect(replayed.task.id).not.toBe(recorded.task.id)
    }).pipe(Effect.provide(TestPlatform)))
})
