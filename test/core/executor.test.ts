import { describe, expect, it } from "@effect/vitest"
import { Data, Deferred, Effect, Either, Exit, FastCheck, Fiber, Option, Queue, Ref, Schedule, TestClock } from "effect"
import { executeGraph, runGraph } from "../../src/core/executor.ts"
import {
  type ActionNode,
  type Graph,
  isComplete,
  type Node,
  resultLookup,
  topologicalSort
} from "../../src/core/graph.ts"
import { interpolate } from "../../src/core/template.ts"
import { decision, graphOf, llm, metadata, skill } from "./graphFixtures.ts"

const statuses = (graph: Graph) => Object.fromEntries(graph.nodes.map((node) => [node.id, node.status]))
const nodeOf = (graph: Graph, id: string) =>
  Option.getOrThrow(Option.fromNullable(graph.nodes.find((node) => node.id === id)))

/** Records the ids runNode was called with, in order. */
const callLog = Effect.map(Ref.make<ReadonlyArray<string>>([]), (calls) => ({
  calls,
  record: (node: ActionNode) => Ref.update(calls, (ids) => [...ids, node.id])
}))

class DiskFull extends Data.TaggedError("DiskFull")<{ readonly message: string }> {}
class Timeout extends Data.TaggedError("Timeout")<{}> {}

describe("executeGraph", () => {
  it.effect("gives each node the results of its dependencies and stores what it returns", () =>
    Effect.gen(function*() {
      const graph = graphOf(
        skill("fetch"),
        llm("summary", ["fetch"], "Summarise {fetch}"),
        skill("publish", ["summary"])
      )
      const runNode = (node: ActionNode, current: Graph) =>
        Effect.succeed(
          node.action === "llm_call" ?
            interpolate(node.prompt_template, resultLookup(current)).toUpperCase() :
            `${node.id} done`
        )
      const done = yield* executeGraph(graph, { maxParallel: 4, runNode })
      expect(done.nodes.map((node) => [node.id, node.status, node.result])).toEqual([
        ["fetch", "complete", "fetch done"],
        ["summary", "complete", "SUMMARISE FETCH DONE"],
        ["publish", "complete", "publish done"]
      ])
      expect(done.metadata).toEqual(metadata)
    }))

  it.effect("returns a finished graph unchanged, running nothing", () =>
    Effect.gen(function*() {
      const graph = graphOf(
        { ...skill("a"), status: "complete", result: 1 },
        { ...skill("b", ["a"]), status: "skipped" }
      )
      const log = yield* callLog
      const done = yield* executeGraph(graph, { maxParallel: 2, runNode: (node) => log.record(node) })
      expect(done.nodes).toEqual(graph.nodes)
      expect(yield* Ref.get(log.calls)).toEqual([])
    }))

  describe("parallelism", () => {
    it.effect("never runs more than maxParallel nodes at once, and does reach it", () =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const started = yield* Queue.unbounded<string>()
        const active = yield* Ref.make(0)
        const mostActive = yield* Ref.make(0)
        const runNode = (node: ActionNode) =>
          Effect.gen(function*() {
            const now = yield* Ref.updateAndGet(active, (n) => n + 1)
            yield* Ref.update(mostActive, (most) => Math.max(most, now))
            yield* Queue.offer(started, node.id)
            yield* Deferred.await(gate)
            yield* Ref.update(active, (n) => n - 1)
          })
        const graph = graphOf(...Array.from({ length: 10 }, (_, i) => skill(`n${i}`)))
        const run = yield* Effect.fork(executeGraph(graph, { maxParallel: 3, runNode }))
        yield* Queue.takeN(started, 3)
        yield* Effect.repeatN(Effect.yieldNow(), 50) // every chance to start a fourth
        expect(yield* Ref.get(active)).toBe(3)
        yield* Deferred.succeed(gate, undefined)
        const done = yield* Fiber.join(run)
        expect(yield* Ref.get(mostActive)).toBe(3)
        expect(isComplete(done)).toBe(true)
      }))

    it.live("starts a node as soon as its own dependencies finish, not level by level", () =>
      Effect.gen(function*() {
        const afterFastRan = yield* Deferred.make<void>()
        const graph = graphOf(skill("slow"), skill("fast"), skill("after_fast", ["fast"]))
        // `slow` only finishes once `after_fast` has run: a level-by-level executor would wait forever.
        const runNode = (node: ActionNode) =>
          node.id === "slow" ?
            Deferred.await(afterFastRan) :
            node.id === "after_fast" ?
            Deferred.succeed(afterFastRan, undefined) :
            Effect.void
        const done = yield* executeGraph(graph, { maxParallel: 2, runNode }).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "after_fast waited for slow" })
        )
        expect(isComplete(done)).toBe(true)
      }))
  })

  describe("decisions", () => {
    const branching = graphOf(
      skill("fetch"),
      decision("check", ["fetch"], "length > 5", "long", "short"),
      llm("long", ["check"], "Shorten {fetch}"),
      skill("long_after", ["long"]),
      skill("short", ["check"]),
      skill("short_after", ["short"]),
      skill("short_after_after", ["short_after", "fetch"]),
      skill("independent", ["fetch"])
    )
    const runWith = (fetched: string) =>
      Effect.gen(function*() {
        const log = yield* callLog
        const done = yield* executeGraph(branching, {
          maxParallel: 3,
          runNode: (node) => Effect.as(log.record(node), node.id === "fetch" ? fetched : `${node.id} ran`)
        })
        return { done, calls: [...(yield* Ref.get(log.calls))].sort() }
      })

    it.effect("runs the if_true branch when the condition holds and skips the other one and all below it", () =>
      Effect.gen(function*() {
        const { calls, done } = yield* runWith("a long text")
        expect(nodeOf(done, "check")).toMatchObject({ status: "complete", result: true })
        expect(statuses(done)).toEqual({
          fetch: "complete",
          check: "complete",
          long: "complete",
          long_after: "complete",
          short: "skipped",
          short_after: "skipped",
          short_after_after: "skipped",
          independent: "complete"
        })
        expect(calls).toEqual(["fetch", "independent", "long", "long_after"])
      }))

    it.effect("runs the if_false branch when the condition does not hold", () =>
      Effect.gen(function*() {
        const { calls, done } = yield* runWith("tiny")
        expect(nodeOf(done, "check")).toMatchObject({ status: "complete", result: false })
        expect(statuses(done)).toMatchObject({
          long: "skipped",
          long_after: "skipped",
          short: "complete",
          short_after_after: "complete"
        })
        expect(calls).toEqual(["fetch", "independent", "short", "short_after", "short_after_after"])
      }))

    it.effect("fails a decision whose condition cannot be evaluated, without retries, and skips both branches", () =>
      Effect.gen(function*() {
        const graph = graphOf(
          skill("fetch"),
          decision("check", ["fetch"], "{fetch} > 3", "yes", "no"),
          skill("yes", ["check"]),
          skill("no", ["check"])
        )
        const done = yield* executeGraph(graph, { maxParallel: 2, runNode: () => Effect.succeed("abc") })
        expect(nodeOf(done, "check")).toMatchObject({
          status: "failed",
          retries: 0,
          error: `condition "{fetch} > 3": cannot use ">" on a string and a number at position 8`
        })
        expect(statuses(done)).toMatchObject({ yes: "skipped", no: "skipped" })
      }))
  })

  describe("retries", () => {
    it.effect("retries a failing node, counting and reporting each retry, until it succeeds", () =>
      Effect.gen(function*() {
        const seenRetries = yield* Ref.make<ReadonlyArray<number>>([])
        const reported = yield* Ref.make<ReadonlyArray<number>>([])
        const done = yield* executeGraph(graphOf(skill("flaky"), skill("after", ["flaky"])), {
          maxParallel: 1,
          runNode: (node) =>
            node.id === "after" ? Effect.void : Ref.updateAndGet(seenRetries, (seen) => [...seen, node.retries]).pipe(
              Effect.filterOrFail((seen) => seen.length === 3, () => new DiskFull({ message: "disk full" }))
            ),
          onUpdate: (graph) => Ref.update(reported, (retries) => [...retries, nodeOf(graph, "flaky").retries])
        })
        expect(yield* Ref.get(seenRetries)).toEqual([0, 1, 2])
        expect(new Set(yield* Ref.get(reported))).toEqual(new Set([0, 1, 2]))
        expect(nodeOf(done, "flaky")).toMatchObject({ status: "complete", retries: 2 })
        expect(statuses(done)).toEqual({ flaky: "complete", after: "complete" })
      }))

    it.effect("marks a node failed with its error once its retries are used up, and skips what depends on it", () =>
      Effect.gen(function*() {
        const log = yield* callLog
        const graph = graphOf(skill("write"), skill("report", ["write"]), skill("notify", ["report"]), skill("other"))
        const done = yield* executeGraph(graph, {
          maxParallel: 2,
          runNode: (node) =>
            Effect.zipRight(
              log.record(node),
              node.id === "write" ? new DiskFull({ message: "disk full" }) : Effect.void
            )
        })
        expect(nodeOf(done, "write")).toMatchObject({ status: "failed", retries: 2, error: "disk full" })
        expect(statuses(done)).toEqual({ write: "failed", report: "skipped", notify: "skipped", other: "complete" })
        expect((yield* Ref.get(log.calls)).filter((id) => id === "write")).toHaveLength(3)
      }))

    it.effect("describes errors without a message by their tag, or as text", () =>
      Effect.gen(function*() {
        const graph = graphOf({ ...skill("a"), max_retries: 0 }, { ...skill("b"), max_retries: 0 })
        const done = yield* executeGraph(graph, {
          maxParallel: 2,
          runNode: (node): Effect.Effect<void, Timeout | { code: number }> =>
            node.id === "a" ? new Timeout() : Effect.fail({ code: 42 })
        })
        expect(done.nodes.map((node) => node.error)).toEqual(["Timeout", `{"code":42}`])
      }))

    it.effect("spaces retries with the retry schedule", () =>
      Effect.gen(function*() {
        const attemptsAt = yield* Ref.make<ReadonlyArray<number>>([])
        const run = yield* Effect.fork(executeGraph(graphOf(skill("flaky")), {
          maxParallel: 1,
          retrySchedule: Schedule.spaced("1 minute"),
          runNode: () =>
            TestClock.currentTimeMillis.pipe(
              Effect.flatMap((now) => Ref.updateAndGet(attemptsAt, (at) => [...at, now])),
              Effect.filterOrFail((at) => at.length === 2, () => "not yet")
            )
        }))
        yield* TestClock.adjust("1 minute")
        const done = yield* Fiber.join(run)
        expect(yield* Ref.get(attemptsAt)).toEqual([0, 60_000])
        expect(nodeOf(done, "flaky")).toMatchObject({ status: "complete", retries: 1 })
      }))
  })

  describe("interruption and resuming", () => {
    it.effect("leaves an interrupted run resumable, and a resumed run never re-runs completed nodes", () =>
      Effect.gen(function*() {
        const graph = graphOf(skill("a"), skill("b", ["a"]), skill("c", ["b"]), skill("d"))
        const saved = yield* Ref.make(graph)
        const started = yield* Queue.unbounded<string>()
        const run = yield* Effect.fork(executeGraph(graph, {
          maxParallel: 2,
          onUpdate: (snapshot) => Ref.set(saved, snapshot),
          runNode: (node) =>
            node.id === "a" ? Effect.succeed("A") : Effect.zipRight(Queue.offer(started, node.id), Effect.never)
        }))
        expect([...(yield* Queue.takeN(started, 2))].sort()).toEqual(["b", "d"])
        yield* Fiber.interrupt(run)

        const interrupted = yield* Ref.get(saved)
        expect(statuses(interrupted)).toEqual({ a: "complete", b: "pending", c: "pending", d: "pending" })

        const log = yield* callLog
        const resumed = yield* executeGraph(interrupted, {
          maxParallel: 2,
          runNode: (node) => Effect.as(log.record(node), node.id)
        })
        expect([...(yield* Ref.get(log.calls))].sort()).toEqual(["b", "c", "d"])
        expect(resumed.nodes.map((node) => [node.id, node.status, node.result])).toEqual([
          ["a", "complete", "A"],
          ["b", "complete", "b"],
          ["c", "complete", "c"],
          ["d", "complete", "d"]
        ])
      }))

    it.effect("runs again a node a crashed process left running", () =>
      Effect.gen(function*() {
        const log = yield* callLog
        const crashed = graphOf(
          { ...skill("a"), status: "complete", result: 1 },
          { ...skill("b", ["a"]), status: "running" }
        )
        const done = yield* executeGraph(crashed, { maxParallel: 1, runNode: (node) => log.record(node) })
        expect(yield* Ref.get(log.calls)).toEqual(["b"])
        expect(statuses(done)).toEqual({ a: "complete", b: "complete" })
      }))
  })

  describe("a failure that stops the run (stopOn)", () => {
    class ModelDown extends Data.TaggedError("ModelDown")<{}> {}
    const isModelDown = (error: unknown): error is ModelDown => error instanceof ModelDown

    it.effect("leaves the stopping node pending with its retries, lets the running node finish, starts nothing else", () =>
      Effect.gen(function*() {
        // a and b run together; b's model is down while a is still running; c (after a) and d (after b) wait.
        const graph = graphOf(skill("a"), llm("b", [], "ask"), skill("c", ["a"]), skill("d", ["b"]))
        const log = yield* callLog
        const bFailed = yield* Deferred.make<void>()
        const run = yield* runGraph(graph, {
          maxParallel: 2,
          stopOn: isModelDown,
          runNode: (node) =>
            Effect.zipRight(
              log.record(node),
              node.id === "b"
                ? Effect.zipRight(Deferred.succeed(bFailed, undefined), Effect.fail(new ModelDown()))
                : Effect.as(Deferred.await(bFailed), node.id.toUpperCase())
            )
        })
        expect(Option.getOrNull(run.stopped)).toBeInstanceOf(ModelDown)
        expect([...(yield* Ref.get(log.calls))].sort()).toEqual(["a", "b"])
        expect(run.graph.nodes.map((node) => [node.id, node.status, node.retries])).toEqual([
          ["a", "complete", 0],
          ["b", "pending", 0],
          ["c", "pending", 0],
          ["d", "pending", 0]
        ])
        // Run again once the model is back: only what was left runs.
        const again = yield* callLog
        const done = yield* executeGraph(run.graph, { maxParallel: 2, runNode: (node) => Effect.as(again.record(node), node.id) })
        expect([...(yield* Ref.get(again.calls))].sort()).toEqual(["b", "c", "d"])
        expect(isComplete(done)).toBe(true)
      }))

    it.effect("other failures still fail their node after its retries; a run with no stop says so", () =>
      Effect.gen(function*() {
        const graph = graphOf(skill("a"), skill("b", ["a"]))
        const run = yield* runGraph(graph, {
          maxParallel: 1,
          stopOn: isModelDown,
          runNode: (node) => (node.id === "a" ? Effect.fail(new DiskFull({ message: "disk full" })) : Effect.succeed(1))
        })
        expect(Option.isNone(run.stopped)).toBe(true)
        expect(run.graph.nodes.map((node) => [node.id, node.status, node.retries])).toEqual([["a", "failed", 2], ["b", "skipped", 0]])
      }))

    it.effect("a stop during a node's retries ends them there", () =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        const run = yield* runGraph(graphOf(skill("a")), {
          maxParallel: 1,
          stopOn: isModelDown,
          runNode: () =>
            Effect.flatMap(Ref.updateAndGet(attempts, (n) => n + 1), (n): Effect.Effect<never, DiskFull | ModelDown> =>
              n === 1 ? Effect.fail(new DiskFull({ message: "flaky" })) : Effect.fail(new ModelDown()))
        })
        expect(yield* Ref.get(attempts)).toBe(2)
        expect(Option.isSome(run.stopped)).toBe(true)
        expect(run.graph.nodes.map((node) => [node.id, node.status])).toEqual([["a", "pending"]])
      }))
  })

  describe("failures of the run itself", () => {
    it.effect("fails with the error of onUpdate and leaves no node running", () =>
      Effect.gen(function*() {
        const last = yield* Ref.make<Option.Option<Graph>>(Option.none())
        const graph = graphOf(skill("a"), skill("b"), skill("c", ["a"]))
        const error = yield* executeGraph(graph, {
          maxParallel: 2,
          runNode: () => Effect.void,
          onUpdate: (snapshot) =>
            Effect.zipRight(
              Ref.set(last, Option.some(snapshot)),
              snapshot.nodes.some((node) => node.status === "complete") ? Effect.fail("disk full") : Effect.void
            )
        }).pipe(Effect.flip)
        expect(error).toBe("disk full")
        const saved = Option.getOrThrow(yield* Ref.get(last))
        expect(saved.nodes.some((node) => node.status === "running")).toBe(false)
      }))

    it.effect("dies when runNode dies: a defect is a bug, not a node failure", () =>
      Effect.gen(function*() {
        const run = executeGraph(graphOf(skill("a")), { maxParallel: 1, runNode: () => Effect.dieMessage("bug") })
        const exit = yield* Effect.exit(run)
        expect(Exit.isFailure(exit) && Exit.causeOption(exit).pipe(Option.exists((cause) => cause._tag === "Die")))
          .toBe(true)
      }))
  })

  describe("against a sequential reference run", () => {
    /** A random DAG (ranks give the edges, the declaration order is shuffled), failing nodes, and delays. */
    const scenario = FastCheck.integer({ min: 1, max: 25 }).chain((size) => {
      const each = <A>(item: FastCheck.Arbitrary<A>) => FastCheck.array(item, { minLength: size, maxLength: size })
      const ranks = Array.from({ length: size }, (_, rank) => rank)
      return FastCheck.record({
        picks: each(FastCheck.array(FastCheck.nat(), { maxLength: 3 })),
        order: FastCheck.shuffledSubarray(ranks, { minLength: size, maxLength: size }),
        failing: each(FastCheck.boolean()),
        delays: each(FastCheck.nat(4)),
        maxParallel: FastCheck.integer({ min: 1, max: 8 })
      })
    })

    /** Node `n{rank}` depends on some lower ranks; nodes are declared in `order`. */
    const buildGraph = (picks: ReadonlyArray<ReadonlyArray<number>>, order: ReadonlyArray<number>) =>
      graphOf(...order.map((rank) =>
        skill(`n${rank}`, rank === 0 ? [] : Array.from(new Set(picks[rank].map((pick) => `n${pick % rank}`))))
      ))

    /** Each result names the node and the results it was given, so a wrong input shows. */
    const compose = (node: Node, resultOf: (id: string) => unknown) =>
      `${node.id}(${node.depends_on.map((dep) => String(resultOf(dep))).join(",")})`

    /** What running the nodes one by one, in topological order, gives. */
    const reference = (graph: Graph, failing: ReadonlySet<string>): ReadonlyArray<Node> => {
      const done = new Map<string, Node>()
      for (const node of Either.getOrThrow(topologicalSort(graph))) {
        const blocked = node.depends_on.some((dep) => done.get(dep)?.status !== "complete")
        done.set(
          node.id,
          blocked ?
            { ...node, status: "skipped" } :
            failing.has(node.id) ?
            { ...node, status: "failed", retries: node.max_retries, error: `${node.id} failed` } :
            { ...node, status: "complete", result: compose(node, (id) => done.get(id)?.result) }
        )
      }
      return graph.nodes.map((node) => Option.getOrThrow(Option.fromNullable(done.get(node.id))))
    }

    /** A reported state is reachable: bounded, dependencies first, and statuses only move forward. */
    const expectConsistent = (previous: ReadonlyArray<Node>, nodes: ReadonlyArray<Node>, maxParallel: number) => {
      const status = new Map(nodes.map((node) => [node.id, node.status]))
      expect(nodes.filter((node) => node.status === "running").length).toBeLessThanOrEqual(maxParallel)
      for (const node of nodes.filter((n) => n.status === "running" || n.status === "complete")) {
        expect(node.depends_on.every((dep) => status.get(dep) === "complete")).toBe(true)
      }
      const forward = ["pending", "running", "complete"]
      previous.forEach((before, i) => {
        const after = nodes[i].status
        if (after !== before.status && forward.includes(after)) {
          expect(forward.indexOf(after)).toBeGreaterThan(forward.indexOf(before.status))
        }
      })
    }

    const title = "ends like the sequential run whatever maxParallel, reporting only consistent states"
    it.effect.prop(title, [scenario], ([s]) =>
      Effect.gen(function*() {
        const graph = buildGraph(s.picks, s.order)
        const rank = (id: string) => Number(id.slice(1))
        const failing = new Set(graph.nodes.filter((node) => s.failing[rank(node.id)]).map((node) => node.id))
        const snapshots = yield* Ref.make<ReadonlyArray<ReadonlyArray<Node>>>([])
        const done = yield* executeGraph(graph, {
          maxParallel: s.maxParallel,
          runNode: (node, current) =>
            Effect.repeatN(Effect.yieldNow(), s.delays[rank(node.id)]).pipe(
              Effect.zipRight(
                failing.has(node.id) ?
                  Effect.fail(`${node.id} failed`) :
                  Effect.succeed(compose(node, (id) => Option.getOrUndefined(resultLookup(current)(id))))
              )
            ),
          onUpdate: (snapshot) => Ref.update(snapshots, (all) => [...all, snapshot.nodes])
        })
        expect(done.nodes).toEqual(reference(graph, failing))

        const reported = yield* Ref.get(snapshots)
        reported.forEach((nodes, i) => expectConsistent(i === 0 ? graph.nodes : reported[i - 1], nodes, s.maxParallel))
      }))
  })
})
