/**
 * Many tasks in one process: started with `Agent.start`, each driven by its own fiber under its
 * own lock, sharing one LLM and one sandbox, at most `limits.max_concurrent_tasks` at a time.
 * Concurrency is proven without timing: the scripted model holds its first calls at a barrier
 * that only opens when that many calls are in flight at once.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Effect, Layer, Option, Ref, Stream } from "effect"
import { Agent, AgentDefault, type Progress } from "../../src/Agent.ts"
import type { AgentConfig } from "../../src/core/config.ts"
import { AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { FakeReply, Llm, LlmFake } from "../../src/layers/Llm.ts"
import { LuallmTest } from "../../src/layers/Luallm.ts"
import { State } from "../../src/layers/State.ts"
import { testConfig } from "../support/agentHarness.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

/** Task `i` plans one llm_call node; its answer names the task. */
const repliesFor = (i: number) => [
  FakeReply.content(JSON.stringify({ nodes: [{ id: "say", action: "llm_call", prompt_template: `Say hello as [task-${i}].` }] }), {
    when: `Request: Greet as [task-${i}]`
  }),
  FakeReply.content(`hello from ${i}`, { when: `Say hello as [task-${i}]` })
]

/**
 * The scripted model, watched: how many calls are in flight (and the most ever), and a barrier
 * that holds the first `barrier` calls until that many wait together.
 */
const watchedLlm = (replies: ReadonlyArray<FakeReply>, barrier: number) =>
  Layer.effectContext(Effect.gen(function*() {
    const inner = yield* Llm
    const inFlight = yield* Ref.make(0)
    const most = yield* Ref.make(0)
    const arrived = yield* Ref.make(0)
    const open = yield* Deferred.make<void>()
    const llm = Llm.of({
      ...inner,
      complete: (request) =>
        Effect.acquireUseRelease(
          Effect.flatMap(Ref.updateAndGet(inFlight, (n) => n + 1), (now) => Ref.update(most, (m) => Math.max(m, now))),
          () =>
            Effect.gen(function*() {
              const number = yield* Ref.updateAndGet(arrived, (n) => n + 1)
              if (number === barrier) yield* Deferred.succeed(open, undefined)
              if (number <= barrier) {
                yield* Deferred.await(open).pipe(
                  Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`only ${number} of ${barrier} calls ever ran at once`) }),
                  Effect.orDie
                )
              }
              return yield* inner.complete(request)
            }),
          () => Ref.update(inFlight, (n) => n - 1)
        )
    })
    return Context.make(Llm, llm).pipe(Context.add(MostInFlight, { most: Ref.get(most) }))
  })).pipe(Layer.provide(LlmFake(replies, { model: "test-model" })))

class MostInFlight extends Context.Tag("MostInFlight")<MostInFlight, { readonly most: Effect.Effect<number> }>() {}

const layerFor = (config: AgentConfig, home: string, replies: ReadonlyArray<FakeReply>, barrier: number) =>
  AgentDefault.pipe(
    Layer.provideMerge(watchedLlm(replies, barrier)),
    Layer.provideMerge(LuallmTest({ servers: [] })),
    Layer.provideMerge(AuditTest),
    Layer.provideMerge(AppConfigFrom(config, { home, cwd: home })),
    Layer.provideMerge(NodeContext.layer)
  )

const withLimit = (home: string, maxConcurrent: number): AgentConfig => {
  const base = testConfig(home)
  return { ...base, limits: { ...base.limits, max_concurrent_tasks: maxConcurrent } }
}

describe("many tasks in one process", () => {
  it.scopedLive("8 tasks run at once, each completing with its own result, saved state and audit lines", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const ids = [0, 1, 2, 3, 4, 5, 6, 7]
      const result = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const handles = yield* Effect.forEach(ids, (i) => agent.start(`Greet as [task-${i}]`))
        const outcomes = yield* Effect.forEach(handles, (handle) => handle.await, { concurrency: "unbounded" })
        const state = yield* State
        const saved = yield* Effect.forEach(handles, (handle) => state.load(handle.id))
        return { handles, outcomes, saved, entries: yield* (yield* AuditMemory).entries, most: yield* (yield* MostInFlight).most }
      }).pipe(Effect.provide(layerFor(withLimit(home, 8), home, ids.flatMap(repliesFor), 8)))

      // The barrier of 8 opened: all 8 planning calls were in flight together.
      expect(result.most).toBe(8)
      expect(new Set(result.handles.map((h) => h.id)).size).toBe(8)
      ids.forEach((i) => {
        const id = result.handles[i]?.id ?? ""
        expect(result.outcomes[i]?.task).toMatchObject({ id, state: "complete", result: { say: `hello from ${i}` } })
        expect(Option.map(result.saved[i] ?? Option.none(), (t) => [t.id, t.state, t.result])).toEqual(
          Option.some([id, "complete", { say: `hello from ${i}` }])
        )
        const own = result.entries.filter((e) => e.task_id === id)
        expect(own.map((e) => e.event)).toEqual(expect.arrayContaining(["task.start", "task.transition", "llm.call", "node.complete", "task.complete"]))
        expect(own.find((e) => e.event === "task.start")?.data["prompt"]).toBe(`Greet as [task-${i}]`)
      })
      // Every line of a task belongs to it: none is stamped with nothing or with another task.
      const perTask = ids.map((i) => result.entries.filter((e) => e.task_id === result.handles[i]?.id).length)
      expect(perTask.reduce((a, b) => a + b, 0)).toBe(result.entries.length)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("limits.max_concurrent_tasks: of 6 tasks, never more than 2 step at once, and all complete", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const ids = [0, 1, 2, 3, 4, 5]
      const result = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const handles = yield* Effect.forEach(ids, (i) => agent.start(`Greet as [task-${i}]`))
        const outcomes = yield* Effect.forEach(handles, (handle) => handle.await, { concurrency: "unbounded" })
        return { outcomes, most: yield* (yield* MostInFlight).most }
      }).pipe(Effect.provide(layerFor(withLimit(home, 2), home, ids.flatMap(repliesFor), 2)))
      expect(result.most).toBe(2)
      expect(result.outcomes.map((o) => o.task.state)).toEqual(ids.map(() => "complete"))
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("the handle's stream delivers the task's progress from its start, even to a late subscriber, and ends with the task", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const { early, late, outcome } = yield* Effect.gen(function*() {
        const agent = yield* Agent
        const handle = yield* agent.start("Greet as [task-0]")
        const early = yield* Effect.fork(Stream.runCollect(handle.events))
        const outcome = yield* handle.await
        const late = yield* Stream.runCollect(handle.events)
        return { early: Chunk.toReadonlyArray(yield* early.await.pipe(Effect.flatten)), late: Chunk.toReadonlyArray(late), outcome }
      }).pipe(Effect.provide(layerFor(testConfig(home), home, repliesFor(0), 1)))
      expect(outcome.task.state).toBe("complete")
      const describe = (events: ReadonlyArray<Progress>) =>
        events.map((p) => (p._tag === "Transition" ? `${p.from}→${p.to}` : p._tag === "Node" ? `node ${p.id} ${p.status}` : `llm ${p.purpose}`))
      expect(describe(early)).toEqual([
        "pending→planning",
        "llm plan",
        "planning→graph_exec",
        "node say running",
        "llm node",
        "node say complete",
        "graph_exec→complete"
      ])
      expect(late).toEqual(early)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("onProgress takes a plain callback as well as an Effect listener", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const plain: Array<string> = []
      const effectful: Array<string> = []
      yield* Effect.gen(function*() {
        const agent = yield* Agent
        yield* agent.run("Greet as [task-0]", { onProgress: (progress) => void plain.push(progress._tag) })
        yield* agent.run("Greet as [task-1]", { onProgress: (progress) => Effect.sync(() => void effectful.push(progress._tag)) })
        // A callback that throws is the app's bug: the task still completes.
        const survived = yield* agent.run("Greet as [task-2]", {
          onProgress: () => {
            throw new Error("the app's progress view is broken")
          }
        })
        expect(survived.task.state).toBe("complete")
      }).pipe(Effect.provide(layerFor(testConfig(home), home, [0, 1, 2].flatMap(repliesFor), 1)))
      expect(plain).toEqual(["Transition", "LlmCall", "Transition", "Node", "LlmCall", "Node", "Transition"])
      expect(effectful).toEqual(plain)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a task this process drives cannot be resumed or reset by it at the same time", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const errors = yield* Effect.gen(function*() {
        const agent = yield* Agent
        // The barrier of 2 holds the first call until the test lets a second one in: the task stays running.
        const handle = yield* agent.start("Greet as [task-0]")
        const resume = yield* Effect.flip(agent.resume({ task: handle.id }))
        const reset = yield* Effect.flip(agent.reset(handle.id))
        yield* handle.interrupt
        return { resume, reset, id: handle.id }
      }).pipe(Effect.provide(layerFor(testConfig(home), home, repliesFor(0), 2)))
      expect(errors.resume._tag).toBe("TaskInProgress")
      expect(errors.resume.message).toContain(errors.id.slice(0, 8))
      expect(errors.resume.message).toContain("Agent.reset")
      expect(errors.reset._tag).toBe("TaskInProgress")
    }).pipe(Effect.provide(TestPlatform)))
})
