/**
 * The task entity's message handling, on `@effect/cluster`'s in-memory runner (`TestRunner`:
 * real sharding, in-memory message storage, persisted messages serialised as between
 * processes) with a real agent over a temp dir and a scripted model.
 */
import * as TestRunner from "@effect/cluster/TestRunner"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schedule } from "effect"
import { Agent } from "../../src/Agent.ts"
import type { Tier } from "../../src/core/config.ts"
import { newTask } from "../../src/core/task.ts"
import { Approvals } from "../../src/layers/Approvals.ts"
import { AuditMemory } from "../../src/layers/Audit.ts"
import { taskEntityLayer } from "../../src/layers/cluster/entity.ts"
import { ApprovalDecided, ResumeTask, StartTask, TaskEntity } from "../../src/layers/cluster/protocol.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { State } from "../../src/layers/State.ts"
import { agentLayer, installSkill, testConfig } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const plan = (nodes: ReadonlyArray<Record<string, unknown>>) => JSON.stringify({ nodes })

const multiplySkill = `/* @skill {"name": "multiply", "version": "1.0.0", "description": "Multiplies two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a * b }
`
/** Multiplies with a trusted skill, then has the model say the product. */
const productReplies = (tag: string, delayMs = 0) => [
  FakeReply.content(plan([
    { id: "product", action: "skill", skill_name: "multiply", skill_args: { a: 6, b: 7 } },
    { id: "say", action: "llm_call", prompt_template: `Say {product} for ${tag}.`, depends_on: ["product"] }
  ]), { when: `Request: Multiply for ${tag}` }),
  FakeReply.content(`forty-two for ${tag}`, { when: `Say 42 for ${tag}`, delay: `${delayMs} millis` })
]

const tripleSkill = `/* @skill {"name": "triple", "version": "1.0.0", "description": "Triples a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 3 }
`
const tripleTests = `const { run } = require("triple")
test("triples 2", () => { assert.equal(run({ n: 2 }), 6) })
`
/** A plan that needs a missing `triple`, drafted right the first time. */
const draftReplies = [
  FakeReply.content(plan([{ id: "t", action: "skill", skill_name: "triple", skill_args: { n: 14 }, description: "Return three times n." }]), {
    when: "Request: Triple 14"
  }),
  FakeReply.content(tripleSkill, { when: "Write the skill file" }),
  FakeReply.content(tripleTests, { when: "Write triple.test.js" })
]

/** The in-memory runner with the task entity over a real agent (file store in `home`). */
const clusterFor = (home: string, replies: ReadonlyArray<FakeReply>, confirmation: Tier = "auto") => {
  const base = testConfig(home)
  const config = { ...base, approval_tiers: { ...base.approval_tiers, task_confirmation: confirmation } }
  installSkill(config, "multiply", multiplySkill)
  return taskEntityLayer(() => () => Effect.void).pipe(
    Layer.provideMerge(TestRunner.layer),
    Layer.provideMerge(agentLayer(config, replies, home))
  )
}

const setUp = (replies: ReadonlyArray<FakeReply>, confirmation: Tier = "auto") =>
  Effect.gen(function*() {
    const home = yield* tempDir
    return yield* Layer.build(clusterFor(home, replies, confirmation))
  })

/** The saved task once it is in `stateName` (polled; a stuck task fails the test after 20 s). */
const savedIn = (taskId: string, stateName: string) =>
  Effect.flatMap(State, (state) => state.load(taskId)).pipe(
    Effect.flatMap((saved) => (Option.exists(saved, (task) => task.state === stateName) ? Effect.succeed(saved) : Effect.fail(`not ${stateName} yet`))),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("20 seconds"))),
    Effect.orDie
  )

const linesOf = (taskId: string, event: string) =>
  Effect.map(AuditMemory, (memory) => Effect.map(memory.entries, (all) => all.filter((e) => e.task_id === taskId && e.event === event)))
    .pipe(Effect.flatten)

/** A new task sent to the entity, paused on the draft it asks a human to approve. */
const pausedOnDraft = Effect.gen(function*() {
  const client = yield* TaskEntity.client
  const id = crypto.randomUUID()
  const paused = yield* client(id).Start(new StartTask({ prompt: "Triple 14" }))
  expect(paused.task).toMatchObject({ state: "approval", paused: { reason: "approval" } })
  return { client, id, approvalId: paused.task.draft?.approval_id ?? "" }
})

describe("the task entity", () => {
  it.scopedLive("a plan to confirm pauses the task on its runner; a message confirms it only under the prompt tier, as --yes does", () =>
    Effect.gen(function*() {
      const prompted = yield* setUp([...productReplies("e"), ...productReplies("f")], "prompt")
      yield* Effect.gen(function*() {
        const client = yield* TaskEntity.client
        const id = crypto.randomUUID()
        const paused = yield* client(id).Start(new StartTask({ prompt: "Multiply for e" }))
        expect(paused.task).toMatchObject({ state: "confirmation", paused: { reason: "confirmation", next_command: `luallm-agent resume --task ${id.slice(0, 8)} --yes` } })
        const again = yield* client(id).Resume(new ResumeTask({}))
        expect(again.task.state).toBe("confirmation")
        const done = yield* client(id).Resume(new ResumeTask({ confirm_plan: true }))
        expect(done.task).toMatchObject({ state: "complete", result: { say: "forty-two for e" } })
        const confirmed = (yield* linesOf(id, "task.transition")).map((line) => line.data["reason"])
        expect(confirmed).toContain("plan confirmed by --yes, sent with the message")
        // Sent confirmed with the task, it runs in one go.
        const other = crypto.randomUUID()
        const started = yield* client(other).Start(new StartTask({ prompt: "Multiply for f", confirm_plan: true }))
        expect(started.task.state).toBe("complete")
      }).pipe(Effect.provide(prompted))
      const human = yield* setUp(productReplies("g"), "human")
      yield* Effect.gen(function*() {
        const id = crypto.randomUUID()
        const report = yield* (yield* TaskEntity.client)(id).Start(new StartTask({ prompt: "Multiply for g", confirm_plan: true }))
        expect(report.task).toMatchObject({ state: "confirmation", paused: { reason: "confirmation", next_command: `luallm-agent resume --task ${id.slice(0, 8)}` } })
      }).pipe(Effect.provide(human))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Start creates the task under the entity's id and drives it to completion on this runner", () =>
    Effect.gen(function*() {
      const context = yield* setUp(productReplies("a"))
      yield* Effect.gen(function*() {
        const client = yield* TaskEntity.client
        const id = crypto.randomUUID()
        const report = yield* client(id).Start(new StartTask({ prompt: "Multiply for a" }))
        expect(report.runner).toBe("localhost:34431")
        expect(report.task).toMatchObject({ id, state: "complete", result: { say: "forty-two for a" } })
        const saved = yield* Effect.flatMap(State, (state) => state.load(id))
        expect(Option.map(saved, (task) => task.state)).toEqual(Option.some("complete"))
        expect((yield* linesOf(id, "cluster.drive")).map((line) => line.data)).toEqual([{ runner: "localhost:34431", message: "Start" }])
        expect(yield* linesOf(id, "task.complete")).toHaveLength(1)
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a second Start of a task is answered like the first, without driving it again", () =>
    Effect.gen(function*() {
      const context = yield* setUp(productReplies("b"))
      yield* Effect.gen(function*() {
        const client = yield* TaskEntity.client
        const id = crypto.randomUUID()
        const first = yield* client(id).Start(new StartTask({ prompt: "Multiply for b" }))
        // Another prompt even: the first Start is the task's only one.
        const again = yield* client(id).Start(new StartTask({ prompt: "something else" }))
        expect(again).toEqual(first)
        expect(yield* linesOf(id, "cluster.drive")).toHaveLength(1)
        expect(yield* linesOf(id, "task.start")).toHaveLength(1)
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Start of a task that is already saved continues it from its last transition (a message delivered again after a crash)", () =>
    Effect.gen(function*() {
      const context = yield* setUp(productReplies("c"))
      yield* Effect.gen(function*() {
        const id = crypto.randomUUID()
        // What a runner killed right after the task's first save leaves behind.
        yield* Effect.flatMap(State, (state) => state.save(newTask(id, "Multiply for c", new Date().toISOString()), [{ event: "task.start", data: {} }]))
        const report = yield* (yield* TaskEntity.client)(id).Start(new StartTask({ prompt: "Multiply for c" }))
        expect(report.task).toMatchObject({ id, state: "complete", result: { say: "forty-two for c" } })
        expect(yield* linesOf(id, "task.start")).toHaveLength(1)
        expect(yield* linesOf(id, "task.resume")).toHaveLength(1)
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Resume and Status while the task is driven: Resume joins the running drive, Status says who drives it", () =>
    Effect.gen(function*() {
      const context = yield* setUp(productReplies("d", 1500))
      yield* Effect.gen(function*() {
        const client = (yield* TaskEntity.client)
        const id = crypto.randomUUID()
        const started = yield* Effect.fork(client(id).Start(new StartTask({ prompt: "Multiply for d" })))
        // The model answers the node after 1.5 s: by then the task is saved in graph_exec.
        yield* savedIn(id, "graph_exec")
        const status = yield* client(id).Status()
        expect(status).toMatchObject({ runner: "localhost:34431", driving: true, task: { id, state: "graph_exec" } })
        const joined = yield* client(id).Resume(new ResumeTask({}))
        const first = yield* Fiber.join(started)
        expect(joined).toEqual(first)
        expect(first.task.state).toBe("complete")
        expect(yield* linesOf(id, "cluster.drive")).toHaveLength(1)
        expect(yield* client(id).Status()).toMatchObject({ driving: false, task: { state: "complete" } })
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Approve, after a human's yes is recorded, promotes the draft; the task then goes on by itself to complete", () =>
    Effect.gen(function*() {
      const context = yield* setUp(draftReplies)
      yield* Effect.gen(function*() {
        const { approvalId, client, id } = yield* pausedOnDraft
        yield* (yield* Approvals).resolve(approvalId, true, "read it")
        const decided = yield* client(id).Approve(new ApprovalDecided({ approval: approvalId }))
        expect(decided.approval).toMatchObject({ id: approvalId, status: "approved", task_id: id })
        expect(decided.approval.promoted_to).toMatch(/triple\.js$/)
        // The entity sent itself a Resume: the task completes with no further message from here.
        const done = yield* savedIn(id, "complete")
        expect(Option.map(done, (task) => task.result)).toEqual(Option.some({ t: 42 }))
        // Delivered again (a runner died before answering), nothing is promoted twice.
        const again = yield* client(id).Approve(new ApprovalDecided({ approval: approvalId }))
        expect(again.approval.status).toBe("approved")
        expect(yield* linesOf(id, "approval.promote")).toHaveLength(1)
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Approve of an approval no human decided is refused: the message grants nothing, the draft stays unpromoted", () =>
    Effect.gen(function*() {
      const context = yield* setUp(draftReplies)
      yield* Effect.gen(function*() {
        const { approvalId, client, id } = yield* pausedOnDraft
        const refused = yield* client(id).Approve(new ApprovalDecided({ approval: approvalId })).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "RemoteTaskError", error: "ApprovalNotDecided", runner: "localhost:34431" })
        expect(refused.message).toBe(
          `Runner localhost:34431 could not go on with task ${id.slice(0, 8)}: Approval ${approvalId.slice(0, 8)} is still pending; the runner goes on only after a human decides it. ` +
            `Decide it with \`luallm-agent approvals approve ${approvalId.slice(0, 8)}\` or \`luallm-agent approvals reject ${approvalId.slice(0, 8)}\` where its record is (state_dir).`
        )
        expect(yield* (yield* Approvals).get(approvalId)).toMatchObject({ status: "pending", promoted_to: null })
        expect(Option.map(yield* Effect.flatMap(State, (state) => state.load(id)), (task) => task.state)).toEqual(Option.some("approval"))
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("Reject, after a human's no is recorded: the task goes on to fail with the reason; an Approve of it then is refused", () =>
    Effect.gen(function*() {
      const context = yield* setUp(draftReplies)
      yield* Effect.gen(function*() {
        const { approvalId, client, id } = yield* pausedOnDraft
        yield* (yield* Approvals).resolve(approvalId, false, "it reads my keys")
        const decided = yield* client(id).Reject(new ApprovalDecided({ approval: approvalId }))
        expect(decided.approval).toMatchObject({ status: "rejected", reason: "it reads my keys" })
        const failed = yield* savedIn(id, "failed")
        expect(Option.map(failed, (task) => task.error)).toEqual(Option.some(expect.stringContaining("it reads my keys")))
        const refused = yield* client(id).Approve(new ApprovalDecided({ approval: approvalId })).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "RemoteTaskError", error: "ApprovalNotDecided" })
        expect(refused.message).toContain(
          `Approval ${approvalId.slice(0, 8)} was rejected, not approved; a decision is final. \`luallm-agent resume --task ${id.slice(0, 8)}\` continues its task as decided.`
        )
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a decision sent to another task is refused, naming the task the approval belongs to", () =>
    Effect.gen(function*() {
      const context = yield* setUp(draftReplies)
      yield* Effect.gen(function*() {
        const { approvalId, client, id } = yield* pausedOnDraft
        yield* (yield* Approvals).resolve(approvalId, true, "read it")
        const other = crypto.randomUUID()
        const refused = yield* client(other).Approve(new ApprovalDecided({ approval: approvalId })).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "RemoteTaskError", error: "ApprovalOfAnotherTask" })
        expect(refused.message).toBe(
          `Runner localhost:34431 could not go on with task ${other.slice(0, 8)}: Approval ${approvalId.slice(0, 8)} belongs to task ${id.slice(0, 8)}, not to task ${other.slice(0, 8)}; a decision goes to the task that asked for it. \`luallm-agent approvals list\` shows each approval's task.`
        )
        expect((yield* (yield* Approvals).get(approvalId)).promoted_to).toBeNull()
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a task another process holds is driven once that process lets go of it", () =>
    Effect.gen(function*() {
      const context = yield* setUp(productReplies("e"))
      yield* Effect.gen(function*() {
        const state = yield* State
        const id = crypto.randomUUID()
        yield* state.save(newTask(id, "Multiply for e", new Date().toISOString()), [{ event: "task.start", data: {} }])
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(Effect.scoped(Effect.zipRight(state.lock(id, "another process"), Deferred.await(release))))
        yield* Effect.sleep("200 millis")
        const resumed = yield* Effect.fork((yield* TaskEntity.client)(id).Resume(new ResumeTask({})))
        yield* Effect.sleep("1500 millis")
        expect(Option.map(yield* state.load(id), (task) => task.state)).toEqual(Option.some("pending"))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        const report = yield* Fiber.join(resumed)
        expect(report.task.state).toBe("complete")
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)), 20_000)

  it.scopedLive("a message about a task that is not saved is answered with the runner's error", () =>
    Effect.gen(function*() {
      const context = yield* setUp([])
      yield* Effect.gen(function*() {
        const id = crypto.randomUUID()
        const error = yield* (yield* TaskEntity.client)(id).Resume(new ResumeTask({})).pipe(Effect.flip)
        expect(error).toMatchObject({ _tag: "RemoteTaskError", task_id: id, error: "TaskNotFound" })
        expect(error.message).toMatch(new RegExp(`^Runner localhost:34431 could not go on with task ${id.slice(0, 8)}: No task ${id} in .*\\. \`luallm-agent tasks\` lists the saved tasks`))
        expect(yield* Effect.flatMap(Agent, (agent) => agent.tasks)).toEqual({ tasks: [], damaged: [] })
      }).pipe(Effect.provide(context))
    }).pipe(Effect.provide(TestPlatform)))
})
