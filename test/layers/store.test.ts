/**
 * One behavioural suite, two stores: every test below runs against the file store (the
 * embedded default) and against the Postgres store on a real server this file starts
 * (test/support/postgres.ts). Both are reached only through the public layers a user gets
 * (`StateLive`, `AuditLive`, `AuditReaderLive`), chosen by the config's `store`.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { type AgentConfig, configInside } from "../../src/core/config.ts"
import { newTask, type Task } from "../../src/core/task.ts"
import { Audit, AuditLive, AuditReader, AuditReaderLive, inTask } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { defaultTask, resolveTaskId, State, StateLive } from "../../src/layers/State.ts"
import { postgresForSuite, postgresMissing } from "../support/postgresSuite.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const pg = postgresForSuite({ fsync: false })
if (postgresMissing !== undefined) console.log(`skipping the Postgres store: ${postgresMissing}`)

/** The store's services over a config, as the CLI and an embedding app build them. */
const storeLayer = (config: AgentConfig) =>
  StateLive.pipe(
    Layer.provideMerge(AuditLive),
    Layer.provideMerge(AuditReaderLive),
    Layer.provideMerge(AppConfigFrom(config)),
    Layer.provideMerge(NodeContext.layer)
  )

interface StoreUnderTest {
  readonly name: string
  readonly skip: boolean
  /** A fresh, empty store's config (a temp dir; for Postgres also a new database). */
  readonly config: Effect.Effect<AgentConfig, unknown, Scope.Scope>
}

const dir = tempDir.pipe(Effect.provide(TestPlatform))

const postgresStore: StoreUnderTest = {
  name: "Postgres store",
  skip: postgresMissing !== undefined,
  config: Effect.gen(function*() {
    const url = yield* Effect.flatMap(pg.server, (server) => server.createDatabase)
    return { ...configInside(yield* dir), store: url }
  })
}

const stores: ReadonlyArray<StoreUnderTest> = [
  { name: "file store", skip: false, config: Effect.map(dir, (home) => configInside(home)) },
  postgresStore
]

const at = (minute: number) => `2026-03-01T10:${String(minute).padStart(2, "0")}:00.000Z`
const task = (id: string, minute: number, state: Task["state"] = "pending"): Task => ({
  ...newTask(id, `request ${id}`, at(minute)),
  state,
  updated_at: at(minute)
})

/** Runs `body` with a fresh store of this kind. */
const withStore = <A, E>(store: StoreUnderTest, body: Effect.Effect<A, E, State | Audit | AuditReader>) =>
  Effect.gen(function*() {
    const config = yield* store.config
    return yield* Effect.provide(body, storeLayer(config))
  })

describe.skipIf(postgresMissing !== undefined)("task store: Postgres only", () => {
  it.scopedLive("a save that does not follow the last saved transition (a second writer) is refused with StateConflict, and nothing is overwritten", () =>
    Effect.gen(function*() {
      const config = yield* postgresStore.config
      const first = yield* Layer.build(storeLayer(config))
      const second = yield* Layer.build(storeLayer(config))
      const save = (context: typeof first, t: Task) =>
        Effect.provide(Effect.flatMap(State, (state) => state.save(t, [{ event: "task.transition", data: { steps: t.steps } }])), context)
      expect(yield* save(first, task("fenced", 1))).toBe(1)
      expect(yield* save(second, { ...task("fenced", 2), steps: 2 })).toBe(2)
      const refused = yield* Effect.flip(save(first, { ...task("fenced", 3), steps: 99 }))
      expect(refused._tag).toBe("StateConflict")
      expect(refused.message).toContain("after transition 1")
      expect(refused.message).toContain("luallm-agent status --task fenced")
      const saved = yield* Effect.provide(Effect.flatMap(State, (state) => state.load("fenced")), second)
      expect(Option.map(saved, (t) => t.steps)).toEqual(Option.some(2))
      // The refused save's line was not committed either.
      const read = yield* Effect.provide(Effect.flatMap(AuditReader, (reader) => reader.read({ taskPrefix: "fenced" })), second)
      expect(read.entries.map((entry) => entry.data["steps"])).toEqual([0, 2])
      // Having read what is saved now, the first writer may go on from there.
      expect(yield* save(first, { ...task("fenced", 4), steps: 3 })).toBe(3)
    }))
})

for (const store of stores) {
  describe.skipIf(store.skip)(`task store: ${store.name}`, () => {
    it.scopedLive("saves transitions with increasing seq and loads the last one by id", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        expect(yield* state.save(task("a1b2c3d4-0001", 1))).toBe(1)
        expect(yield* state.save({ ...task("a1b2c3d4-0001", 2), state: "planning", steps: 1 })).toBe(2)
        expect(yield* state.save(task("ffff0000-0002", 3))).toBe(1)
        const loaded = yield* state.load("a1b2c3d4-0001")
        expect(Option.map(loaded, (t) => [t.state, t.steps, t.updated_at])).toEqual(Option.some(["planning", 1, at(2)]))
        expect(yield* state.load("no-such-task")).toEqual(Option.none())
      })))

    it.scopedLive("lists tasks newest first with state, request, age stamps and seq", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        expect(yield* state.list).toEqual({ tasks: [], damaged: [] })
        yield* state.save(task("older-task", 1))
        yield* state.save(task("newer-task", 5, "approval"))
        yield* state.save({ ...task("older-task", 9), state: "complete" })
        const list = yield* state.list
        expect(list.damaged).toEqual([])
        expect(list.tasks.map((t) => [t.id, t.state, t.prompt, t.updated_at, t.seq])).toEqual([
          ["older-task", "complete", "request older-task", at(9), 2],
          ["newer-task", "approval", "request newer-task", at(5), 1]
        ])
        // No --task: the most recent unfinished task, even when a finished one is newer.
        expect(Option.map(defaultTask(list), (t) => t.id)).toEqual(Option.some("newer-task"))
      })))

    it.scopedLive("finds a task by an unambiguous prefix and refuses an ambiguous one, naming the matches", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        yield* state.save(task("5f0c2d4e-aaaa", 1))
        yield* state.save(task("5f0c9999-bbbb", 2))
        expect(yield* resolveTaskId("5f0c2d")).toBe("5f0c2d4e-aaaa")
        expect(yield* resolveTaskId("5f0c9999-bbbb")).toBe("5f0c9999-bbbb")
        const ambiguous = yield* Effect.flip(resolveTaskId("5f0c"))
        expect(ambiguous._tag).toBe("TaskAmbiguous")
        expect(ambiguous.message).toContain("5f0c2d4e-aaaa")
        expect(ambiguous.message).toContain("5f0c9999-bbbb")
        expect(ambiguous.message).toContain("Give more characters")
        const missing = yield* Effect.flip(resolveTaskId("deadbeef"))
        expect(missing._tag).toBe("TaskNotFound")
        expect(missing.message).toContain("luallm-agent tasks")
        // Too short to be a prefix: only an exact id matches.
        expect((yield* Effect.flip(resolveTaskId("5f0")))._tag).toBe("TaskNotFound")
      })))

    it.scopedLive("remove discards one task and keeps the others and the audit lines", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        yield* state.save(task("keep-me", 1), [{ event: "task.start", data: {} }])
        yield* state.save(task("drop-me", 2), [{ event: "task.start", data: {} }])
        yield* state.remove("drop-me")
        expect((yield* state.list).tasks.map((t) => t.id)).toEqual(["keep-me"])
        expect(yield* state.load("drop-me")).toEqual(Option.none())
        const lines = (yield* (yield* AuditReader).read()).entries.map((e) => e.task_id)
        expect(lines).toEqual(["keep-me", "drop-me"])
      })))

    it.scopedLive("commits a save's audit lines with it, stamped with the task and the transition's seq", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        yield* state.save(task("t-audit", 1), [{ event: "task.start", data: { prompt: "x" } }])
        yield* state.save({ ...task("t-audit", 2), state: "planning" }, [
          { event: "task.transition", data: { from: "pending", to: "planning" } }
        ])
        const read = yield* (yield* AuditReader).read({ taskPrefix: "t-au" })
        expect(read.bad).toEqual([])
        expect(read.entries.map((e) => [e.event, e.task_id, e.data])).toEqual([
          ["task.start", "t-audit", { prompt: "x", seq: 1 }],
          ["task.transition", "t-audit", { from: "pending", to: "planning", seq: 2 }]
        ])
        // Many lines in one save keep their order; data JSON cannot hold becomes a note, the line stays.
        const circular: Record<string, unknown> = {}
        circular["self"] = circular
        yield* state.save({ ...task("t-audit", 3), state: "planning", steps: 2 }, [
          ...Array.from({ length: 12 }, (_, i) => ({ event: `e${i}`, data: { i } })),
          { event: "odd", data: circular }
        ])
        const after = yield* (yield* AuditReader).read({ taskPrefix: "t-au" })
        expect(after.entries.slice(2).map((e) => [e.event, e.data["seq"]])).toEqual([...Array.from({ length: 12 }, (_, i) => [`e${i}`, 3]), ["odd", undefined]])
        expect(String(after.entries.at(-1)?.data["unserialisable"])).toMatch(/circular/i)
      })))

    it.scopedLive("stamps every line with the task of the fiber that logs it, for tasks side by side", () =>
      withStore(store, Effect.gen(function*() {
        const audit = yield* Audit
        yield* Effect.forEach(["task-one", "task-two", "task-three"], (id) =>
          Effect.forEach([1, 2, 3], (n) => audit.log("work", { id, n }), { concurrency: 3 }).pipe(inTask(id)), { concurrency: 3 })
        yield* audit.log("outside")
        yield* audit.flush
        const entries = (yield* (yield* AuditReader).read()).entries
        expect(entries).toHaveLength(10)
        for (const entry of entries) expect(entry.task_id).toBe(entry.event === "outside" ? null : entry.data["id"])
      })))

    it.scopedLive("one lock per task: a second driver is refused with the holder named, another task locks at the same time", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        const scope = yield* Scope.make()
        yield* Scope.extend(state.lock("task-a", "run \"first\""), scope)
        const refused = yield* Effect.flip(Effect.scoped(state.lock("task-a", "resume")))
        expect(refused._tag).toBe("StateLocked")
        expect(refused.message).toContain(`pid ${process.pid}`)
        expect(refused.message).toContain("`run \"first\"`")
        // A different task is not held up.
        yield* Effect.scoped(state.lock("task-b", "run"))
        yield* Scope.close(scope, Exit.void)
        yield* Effect.scoped(state.lock("task-a", "resume"))
      })))

    it.scopedLive("a second store over the same place (as a second process has) cannot take a held task", () =>
      Effect.gen(function*() {
        const config = yield* store.config
        const first = yield* Layer.build(storeLayer(config))
        const second = yield* Layer.build(storeLayer(config))
        const stateOf = (context: typeof first) => Effect.provide(State, context)
        yield* Effect.provide(Effect.flatMap(State, (state) => state.lock("shared", "run")), first)
        const refused = yield* Effect.flip(Effect.scoped(Effect.flatMap(stateOf(second), (state) => state.lock("shared", "resume"))))
        expect(refused._tag).toBe("StateLocked")
        yield* Effect.scoped(Effect.flatMap(stateOf(second), (state) => state.lock("other", "run")))
      }))

    it.scopedLive("saves of different tasks run side by side, each task's seq in order", () =>
      withStore(store, Effect.gen(function*() {
        const state = yield* State
        const ids = Array.from({ length: 8 }, (_, i) => `parallel-${i}`)
        const fibers = yield* Effect.forEach(ids, (id) =>
          Effect.fork(Effect.forEach([1, 2, 3, 4, 5], (n) => state.save({ ...task(id, n), steps: n }), { concurrency: 1 })))
        const seqs = yield* Effect.forEach(fibers, Fiber.join)
        expect(seqs).toEqual(ids.map(() => [1, 2, 3, 4, 5]))
        for (const id of ids) expect(Option.map(yield* state.load(id), (t) => t.steps)).toEqual(Option.some(5))
      })))
  })
}
