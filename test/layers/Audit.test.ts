import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { Audit, AuditMemory, AuditTest, inTask, makeFileAudit, readAuditLog } from "../../src/layers/Audit.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const linesOf = (file: string) => readFileSync(file, "utf8").split("\n").filter((line) => line !== "")

describe("file audit", () => {
  it.scoped("appends one JSON line per event with ts, event, task_id and data", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/logs/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 1_000_000, maxFiles: 3 })
      yield* TestClock.setTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))
      yield* audit.log("task.start", { prompt: "hi" })
      yield* audit.log("llm.call", { duration_ms: 12 }).pipe(inTask("t-1"))
      yield* audit.flush
      const lines = linesOf(path).map((line) => JSON.parse(line))
      expect(lines).toEqual([
        { ts: "2026-01-02T03:04:05.678Z", event: "task.start", task_id: null, data: { prompt: "hi" } },
        { ts: "2026-01-02T03:04:05.678Z", event: "llm.call", task_id: "t-1", data: { duration_ms: 12 } }
      ])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("keeps appending to an existing log instead of rewriting it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      writeFileSync(path, `{"ts":"x","event":"old","task_id":null,"data":{}}\n`)
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 1_000_000, maxFiles: 3 })
      yield* audit.log("new")
      yield* audit.flush
      expect(linesOf(path).map((l) => JSON.parse(l).event)).toEqual(["old", "new"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("rotates by size: .1 is the newest, the oldest beyond max_files is deleted", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      // Each line is 76 bytes here, so 160 bytes hold two lines.
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 160, maxFiles: 2 })
      for (let i = 1; i <= 9; i++) yield* audit.log("e", { i })
      yield* audit.flush
      const eventsIn = (file: string) => linesOf(file).map((line) => JSON.parse(line).data.i)
      expect(eventsIn(path)).toEqual([9])
      expect(eventsIn(`${path}.1`)).toEqual([7, 8])
      expect(eventsIn(`${path}.2`)).toEqual([5, 6])
      expect(existsSync(`${path}.3`)).toBe(false)
      const read = yield* readAuditLog({ path, maxFiles: 2 })
      expect(read.entries.map((e) => e.data["i"])).toEqual([5, 6, 7, 8, 9])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("with max_files 0 keeps no history when it rotates", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 100, maxFiles: 0 })
      for (let i = 1; i <= 4; i++) yield* audit.log("e", { i })
      yield* audit.flush
      expect(linesOf(path).map((line) => JSON.parse(line).data.i)).toEqual([4])
      expect(existsSync(`${path}.1`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("writes every line whole when many fibers log at once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 4_000, maxFiles: 50 })
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => audit.log("e", { i, pad: "x".repeat(i % 40) }), {
        concurrency: 16
      })
      yield* audit.flush
      const read = yield* readAuditLog({ path, maxFiles: 50 })
      expect(read.bad).toEqual([])
      expect(read.entries.map((e) => e.data["i"]).sort((a, b) => Number(a) - Number(b))).toEqual(
        Array.from({ length: 200 }, (_, i) => i)
      )
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("keeps the event when data cannot be serialised", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 1_000_000, maxFiles: 1 })
      const circular: Record<string, unknown> = {}
      circular["self"] = circular
      yield* audit.log("weird", circular)
      yield* audit.flush
      const [line] = linesOf(path).map((l) => JSON.parse(l))
      expect(line.event).toBe("weird")
      expect(String(line.data.unserialisable)).toMatch(/circular/i)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports an unwritable log as AuditWriteError naming the path, at the first line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/file`, "")
      const audit = yield* makeFileAudit({ path: `${dir}/file/audit.jsonl`, maxSizeBytes: 1, maxFiles: 1 })
      yield* audit.log("x")
      const error = yield* Effect.flip(audit.flush)
      expect(error._tag).toBe("AuditWriteError")
      expect(error.message).toContain(`${dir}/file/audit.jsonl`)
      // Reported once: to whoever waits first (here the flush), or else to the next line logged.
      yield* audit.log("y")
      const next = yield* Effect.flip(audit.log("z").pipe(Effect.zipRight(Effect.yieldNow()), Effect.zipRight(audit.flush)))
      expect(next._tag).toBe("AuditWriteError")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("log returns at once and the writer appends what is queued in order; flush waits for it, closing the log writes the rest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      yield* Effect.scoped(Effect.gen(function*() {
        const audit = yield* makeFileAudit({ path, maxSizeBytes: 1_000_000, maxFiles: 1 })
        for (let i = 0; i < 50; i++) yield* audit.log("e", { i })
        yield* audit.flush
        expect(linesOf(path).map((line) => JSON.parse(line).data.i)).toEqual(Array.from({ length: 50 }, (_, i) => i))
        for (let i = 50; i < 60; i++) yield* audit.log("e", { i })
      }))
      expect(linesOf(path)).toHaveLength(60)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("creates nothing until a line is logged, so commands that only read leave no file behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/logs/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 1_000_000, maxFiles: 1 })
      yield* audit.sync
      expect(existsSync(`${dir}/logs`)).toBe(false)
      yield* audit.log("first")
      yield* audit.sync
      expect(linesOf(path).map((line) => JSON.parse(line).event)).toEqual(["first"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reader reports damaged lines instead of dropping them silently", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = `${dir}/audit.jsonl`
      writeFileSync(path, `{"ts":"a","event":"ok","task_id":null,"data":{}}\n{"ts":"b","ev\n`)
      const read = yield* readAuditLog({ path, maxFiles: 1 })
      expect(read.entries.map((e) => e.event)).toEqual(["ok"])
      expect(read.bad).toEqual([{ file: path, line: 2, text: `{"ts":"b","ev` }])
    }).pipe(Effect.provide(TestPlatform)))
})

describe("in-memory audit", () => {
  it.effect("records entries as a file would hold them", () =>
    Effect.gen(function*() {
      const audit = yield* Audit
      yield* audit.log("a", { n: 1, when: new Date(0) }).pipe(inTask("t"))
      const entries = yield* (yield* AuditMemory).entries
      expect(entries).toEqual([{ ts: "1970-01-01T00:00:00.000Z", event: "a", task_id: "t", data: { n: 1, when: "1970-01-01T00:00:00.000Z" } }])
    }).pipe(Effect.provide(AuditTest)))
})
