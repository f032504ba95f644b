/**
 * What only the file store does (its journal, locks and first-wave migration); what every
 * store does is in test/layers/store.test.ts, run against both stores.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Schema, Scope } from "effect"
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { sampleTask } from "../../bench/stepOverhead.ts"
import { newTask, Task } from "../../src/core/task.ts"
import { Audit, AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { makeFileStateStore } from "../../src/layers/store/fileState.ts"
import { makeTaskEncoder } from "../../src/layers/store/taskJson.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const task = (id: string, steps = 0): Task => ({ ...newTask(id, `request ${id}`, "2026-01-01T00:00:00.000Z"), steps })

const store = (dir: string, extra: { pid?: number; isAlive?: (pid: number) => boolean; compactBytes?: number } = {}) =>
  Effect.flatMap(Audit, (audit) => makeFileStateStore({ dir, audit, ...extra }))

const linesOf = (file: string) => readFileSync(file, "utf8").split("\n").filter((line) => line !== "")

describe("file store: journal", () => {
  it("a record is the task's JSON, which the schema decodes back to the same task", () => {
    const rich: Task = {
      ...sampleTask,
      state: "approval",
      missing_skills: [{ name: "csv_sum", purpose: "sum a column", example_args: { path: "~/a.csv" } }],
      draft: {
        skill: { name: "csv_sum", purpose: "sum a column", example_args: { path: "~/a.csv" } },
        attempt: 2,
        code_path: "/d/csv_sum.js",
        test_path: "/d/csv_sum.test.js",
        feedback: null,
        test_report: { total: 1, passed: 1, failed: 0, results: [{ name: "sums", status: "pass", error: null, duration_ms: 3 }] },
        tested: { code_sha256: "a".repeat(64), test_sha256: "b".repeat(64) },
        approval_id: "ap-1"
      },
      paused: { reason: "approval", message: "waits", next_command: "luallm-agent resume --task 5f0c2d4e" },
      result: { n19: ["nested", { ok: true }] }
    }
    for (const task of [sampleTask, rich]) expect(Schema.decodeUnknownSync(Task)(JSON.parse(JSON.stringify(task)))).toEqual(task)
  })

  it("a task's JSON for a store is JSON.stringify's text, also for snapshots that share their unchanged nodes with the one before", () => {
    const encode = makeTaskEncoder()
    const graph = sampleTask.graph
    if (graph === null) return expect.unreachable("the sample task has a graph")
    // The executor's next snapshot: one node replaced, the others the same objects.
    const next: Task = { ...sampleTask, steps: 13, graph: { ...graph, nodes: graph.nodes.map((node, i) => (i === 12 ? { ...node, status: "complete", result: { rows: [1, 2] } } : node)) } }
    const tasks: ReadonlyArray<Task> = [sampleTask, next, { ...next, result: undefined, error: "a \"quoted\" \u2028 line" }, newTask("t", "no graph yet", "2026-01-01T00:00:00.000Z"), sampleTask]
    for (const task of tasks) expect(encode(task)).toBe(JSON.stringify(task))
  })

  it.scoped("appends one line per transition to tasks/<id>.jsonl: {seq, task}", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save(task("t1", 0))
      yield* state.save(task("t1", 1))
      const lines = linesOf(`${dir}/tasks/t1.jsonl`).map((line) => JSON.parse(line))
      expect(lines.map((line) => [line.seq, line.task.steps])).toEqual([[1, 0], [2, 1]])
      expect(readdirSync(`${dir}/tasks`)).toEqual(["t1.jsonl"])
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("a record cut short (a write a crash or a full disk interrupted) leaves the previous one as the task; the next save cuts it away", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* store(dir)
      yield* first.save(task("t1", 1))
      appendFileSync(`${dir}/tasks/t1.jsonl`, `{"seq":2,"task":{"id":"t1","pro`)
      // A new process (a new store) finds the torn tail.
      const second = yield* store(dir)
      expect(Option.map(yield* second.load("t1"), (t) => t.steps)).toEqual(Option.some(1))
      expect(yield* second.save(task("t1", 2))).toBe(2)
      const lines = linesOf(`${dir}/tasks/t1.jsonl`).map((line) => JSON.parse(line))
      expect(lines.map((line) => [line.seq, line.task.steps])).toEqual([[1, 1], [2, 2]])
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("a damaged whole record is StateCorrupt naming the file and how to discard the task; the list reports it with its id", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save(task("good"))
      mkdirSync(`${dir}/tasks`, { recursive: true })
      writeFileSync(`${dir}/tasks/5f0c2d4e-bad.jsonl`, `{"seq":1,"task":{"id":"5f0c2d4e-bad","state":"flying"}}\n`)
      writeFileSync(`${dir}/tasks/empty.jsonl`, "")
      const error = yield* Effect.flip(state.load("5f0c2d4e-bad"))
      expect(error._tag).toBe("StateCorrupt")
      expect(error.message).toContain(`${dir}/tasks/5f0c2d4e-bad.jsonl`)
      expect(error.message).toContain("luallm-agent reset --task 5f0c2d4e")
      const list = yield* state.list
      expect(list.tasks.map((t) => t.id)).toEqual(["good"])
      expect(list.damaged.map((d) => [d.taskId, d.reason.includes("state") || d.reason.includes("no whole record")])).toEqual(
        expect.arrayContaining([["5f0c2d4e-bad", true], ["empty", true]])
      )
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("a save that fails is StateIoError naming the journal; the other tasks are left as they were", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save(task("before", 3))
      mkdirSync(`${dir}/tasks/blocked.jsonl`) // opening it for appending fails, as on a broken disk
      const error = yield* Effect.flip(state.save(task("blocked")))
      expect(error._tag).toBe("StateIoError")
      expect(error.message).toContain(`Could not write ${dir}/tasks/blocked.jsonl`)
      expect(error.message).toContain("the previously saved task is left as it was")
      expect(Option.map(yield* state.load("before"), (t) => t.steps)).toEqual(Option.some(3))
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("a journal past its size limit is rewritten to its last record, and the seq goes on", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir, { compactBytes: 4096 })
      for (let step = 1; step <= 40; step++) yield* state.save(task("long", step))
      const lines = linesOf(`${dir}/tasks/long.jsonl`).map((line) => JSON.parse(line))
      expect(lines.length).toBeLessThan(40)
      expect(lines.at(-1)).toMatchObject({ seq: 40, task: { steps: 40 } })
      expect(existsSync(`${dir}/tasks/long.jsonl.tmp`)).toBe(false)
      expect(yield* state.save(task("long", 41))).toBe(41)
      expect(Option.map(yield* (yield* store(dir)).load("long"), (t) => t.steps)).toEqual(Option.some(41))
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("an id that is not a plain name is never a path: load finds nothing, save refuses", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      expect(yield* state.load("../../etc/passwd")).toEqual(Option.none())
      const error = yield* Effect.flip(state.save(task("../escape")))
      expect(error._tag).toBe("StateIoError")
      expect(error.message).toContain("never a path")
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("waits for the audit lines (its own and all before) to be written before it writes its record", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const seen: Array<[string, number]> = []
      const audit = Audit.of({
        // How many records the journal held when the line was logged.
        log: () => Effect.void,
        // When the save waits for its lines: how many records the journal held then.
        flush: Effect.sync(() => void seen.push(["flush", existsSync(`${dir}/tasks/t.jsonl`) ? linesOf(`${dir}/tasks/t.jsonl`).length : 0])),
        sync: Effect.void
      })
      const state = yield* makeFileStateStore({ dir, audit })
      yield* state.save(task("t"), [{ event: "task.start", data: {} }])
      yield* state.save(task("t", 1), [{ event: "task.transition", data: {} }])
      expect(seen).toEqual([["flush", 0], ["flush", 1]])
      expect(linesOf(`${dir}/tasks/t.jsonl`)).toHaveLength(2)
    }).pipe(Effect.provide(TestPlatform)))
})

describe("file store: a first-wave current_task.json", () => {
  it.scoped("is moved into its journal when the store starts, so the task mid-way goes on", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/current_task.json`, JSON.stringify({ ...task("legacy-1", 4), state: "approval" }, null, 2))
      const state = yield* store(dir)
      expect(existsSync(`${dir}/current_task.json`)).toBe(false)
      expect(linesOf(`${dir}/tasks/legacy-1.jsonl`).map((line) => JSON.parse(line).seq)).toEqual([1])
      expect((yield* state.list).tasks.map((t) => [t.id, t.state])).toEqual([["legacy-1", "approval"]])
      expect(yield* state.save(task("legacy-1", 5))).toBe(2)
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("is read where it is while a first-wave process still holds agent.lock, and moved by the first save", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/current_task.json`, JSON.stringify(task("legacy-2", 2)))
      writeFileSync(`${dir}/agent.lock`, JSON.stringify({ pid: 4242, since: "then", command: "run" }))
      const state = yield* store(dir, { isAlive: (pid) => pid === 4242 })
      expect(existsSync(`${dir}/current_task.json`)).toBe(true)
      expect((yield* state.list).tasks.map((t) => [t.id, t.seq])).toEqual([["legacy-2", 0]])
      expect(Option.map(yield* state.load("legacy-2"), (t) => t.steps)).toEqual(Option.some(2))
      yield* state.save(task("legacy-2", 3))
      expect(existsSync(`${dir}/current_task.json`)).toBe(false)
      expect((yield* state.list).tasks.map((t) => [t.id, t.seq])).toEqual([["legacy-2", 1]])
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("a damaged one is left in place and listed as damaged, never lost", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/current_task.json`, `{"id":"x","st`)
      const state = yield* store(dir)
      expect(readFileSync(`${dir}/current_task.json`, "utf8")).toBe(`{"id":"x","st`)
      const list = yield* state.list
      expect(list.damaged.map((d) => d.path)).toEqual([`${dir}/current_task.json`])
      expect(list.damaged[0]?.message).toContain("move it away")
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))
})

describe("file store: lock per task", () => {
  it.scoped("refuses a second holder while the first is alive, naming its pid and command", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* store(dir, { pid: 1111, isAlive: () => true })
      const second = yield* store(dir, { pid: 2222, isAlive: () => true })
      yield* first.lock("t", "run \"summarise\"")
      const error = yield* Effect.flip(Effect.scoped(second.lock("t", "resume")))
      expect(error._tag).toBe("StateLocked")
      expect(error.message).toContain("pid 1111")
      expect(error.message).toContain("run \"summarise\"")
      expect(error.message).toContain(`${dir}/tasks/t.lock`)
      // Another task is free.
      yield* Effect.scoped(second.lock("u", "run"))
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("releases the lock when the holder's scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* store(dir, { pid: 1111, isAlive: () => true })
      const second = yield* store(dir, { pid: 2222, isAlive: () => true })
      const scope = yield* Scope.make()
      yield* Scope.extend(first.lock("t", "run"), scope)
      yield* Scope.close(scope, Exit.void)
      expect(existsSync(`${dir}/tasks/t.lock`)).toBe(false)
      yield* second.lock("t", "resume")
      expect(JSON.parse(readFileSync(`${dir}/tasks/t.lock`, "utf8")).pid).toBe(2222)
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("takes over a stale lock whose process is gone, and one an earlier process with this pid left", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      mkdirSync(`${dir}/tasks`)
      writeFileSync(`${dir}/tasks/t.lock`, JSON.stringify({ pid: 999999, since: "then", command: "run" }))
      const state = yield* store(dir, { pid: 3333, isAlive: (pid) => pid !== 999999 })
      yield* Effect.scoped(state.lock("t", "resume"))
      writeFileSync(`${dir}/tasks/t.lock`, JSON.stringify({ pid: 3333, since: "then", command: "run", started: 1 }))
      yield* state.lock("t", "resume")
      expect(JSON.parse(readFileSync(`${dir}/tasks/t.lock`, "utf8"))).toMatchObject({ pid: 3333, command: "resume" })
      expect(readdirSync(`${dir}/tasks`).filter((name) => name !== "t.lock")).toEqual([])
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("uses the real process table by default: a lock naming this process's parent is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      mkdirSync(`${dir}/tasks`)
      writeFileSync(`${dir}/tasks/t.lock`, JSON.stringify({ pid: process.ppid, since: "now", command: "run" }))
      const state = yield* store(dir)
      const error = yield* Effect.flip(Effect.scoped(state.lock("t", "run")))
      expect(error._tag).toBe("StateLocked")
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scoped("of many stores racing for one task, free or with a stale lock, exactly one gets it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const stores = yield* Effect.forEach([1, 2, 3, 4, 5, 6], (n) => store(dir, { pid: 5000 + n, isAlive: (pid) => pid !== 999999 }))
      const race = (id: string) =>
        Effect.forEach(stores, (s, n) => Effect.either(s.lock(id, `racer ${n}`)), { concurrency: "unbounded" })
      expect((yield* race("free")).filter((o) => o._tag === "Right")).toHaveLength(1)
      writeFileSync(`${dir}/tasks/stale.lock`, JSON.stringify({ pid: 999999, since: "then", command: "run" }))
      const outcomes = yield* race("stale")
      expect(outcomes.filter((o) => o._tag === "Right")).toHaveLength(1)
      for (const outcome of outcomes) if (outcome._tag === "Left") expect(outcome.left._tag).toBe("StateLocked")
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))
})

describe("file store: audit partner", () => {
  it.scoped("writes the save's lines to the audit it was given", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save(task("t"), [{ event: "task.start", data: { prompt: "p" } }])
      expect((yield* (yield* AuditMemory).entries).map((e) => [e.event, e.task_id, e.data])).toEqual([["task.start", "t", { prompt: "p", seq: 1 }]])
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))
})
