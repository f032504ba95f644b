import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Schema, Scope } from "effect"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { makeStateStore } from "../../src/layers/State.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const Doc = Schema.Struct({ id: Schema.String, step: Schema.Number })
const store = (dir: string, extra: { pid?: number; isAlive?: (pid: number) => boolean } = {}) =>
  makeStateStore(Doc, { dir, ...extra })

describe("state store", () => {
  it.scoped("loads none when nothing is saved, then what was saved last", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(`${dir}/state`)
      expect(yield* state.load).toEqual(Option.none())
      expect(yield* state.exists).toBe(false)
      yield* state.save({ id: "a", step: 1 })
      yield* state.save({ id: "a", step: 2 })
      expect(yield* state.load).toEqual(Option.some({ id: "a", step: 2 }))
      expect(yield* state.exists).toBe(true)
      expect(existsSync(`${dir}/state/current_task.json.tmp`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("clear removes the saved task and a leftover tmp file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save({ id: "a", step: 1 })
      writeFileSync(`${dir}/current_task.json.tmp`, "{")
      yield* state.clear
      expect(yield* state.exists).toBe(false)
      expect(existsSync(`${dir}/current_task.json.tmp`)).toBe(false)
      yield* state.clear
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports a file truncated mid-write as StateCorrupt naming the path", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save({ id: "a", step: 1 })
      const full = readFileSync(state.path, "utf8")
      writeFileSync(state.path, full.slice(0, Math.floor(full.length / 2)))
      const error = yield* Effect.flip(state.load)
      expect(error._tag).toBe("StateCorrupt")
      expect(error.message).toContain(state.path)
      expect(error.message).toContain("luallm-agent reset")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("reports an empty file and a schema mismatch as StateCorrupt", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      writeFileSync(state.path, "")
      const empty = yield* Effect.flip(state.load)
      expect(empty.message).toContain("the file is empty")
      writeFileSync(state.path, JSON.stringify({ id: "a", step: "two" }))
      const wrong = yield* Effect.flip(state.load)
      expect(wrong._tag).toBe("StateCorrupt")
      expect(wrong.message).toContain("step")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a save that dies before the rename leaves the old state intact", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save({ id: "a", step: 1 })
      // A process killed mid-save leaves a partial tmp file; the real file is untouched.
      writeFileSync(`${state.path}.tmp`, `{"id":"a","st`)
      expect(yield* state.load).toEqual(Option.some({ id: "a", step: 1 }))
      // And the next save replaces the leftover.
      yield* state.save({ id: "a", step: 2 })
      expect(yield* state.load).toEqual(Option.some({ id: "a", step: 2 }))
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a save that fails reports StateIoError and keeps the previous state loadable", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const state = yield* store(dir)
      yield* state.save({ id: "a", step: 1 })
      mkdirSync(`${state.path}.tmp`) // the tmp path is blocked: open fails like on a full disk
      const error = yield* Effect.flip(state.save({ id: "a", step: 2 }))
      expect(error._tag).toBe("StateIoError")
      expect(error.message).toContain("previously saved task is left as it was")
      expect(yield* state.load).toEqual(Option.some({ id: "a", step: 1 }))
    }).pipe(Effect.provide(TestPlatform)))
})

describe("state lock", () => {
  it.scoped("refuses a second holder while the first is alive, naming its pid and command", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* store(dir, { pid: 1111, isAlive: () => true })
      const second = yield* store(dir, { pid: 2222, isAlive: () => true })
      yield* first.lock("run \"summarise\"")
      const error = yield* Effect.flip(Effect.scoped(second.lock("resume")))
      expect(error._tag).toBe("StateLocked")
      expect(error.message).toContain("pid 1111")
      expect(error.message).toContain("run \"summarise\"")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("releases the lock when the holder's scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const first = yield* store(dir, { pid: 1111, isAlive: () => true })
      const second = yield* store(dir, { pid: 2222, isAlive: () => true })
      const scope = yield* Scope.make()
      yield* Scope.extend(first.lock("run"), scope)
      yield* Scope.close(scope, Exit.void)
      expect(existsSync(`${dir}/agent.lock`)).toBe(false)
      yield* second.lock("resume")
      expect(JSON.parse(readFileSync(`${dir}/agent.lock`, "utf8")).pid).toBe(2222)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("takes over a stale lock whose process is gone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/agent.lock`, JSON.stringify({ pid: 999999, since: "then", command: "run" }))
      const state = yield* store(dir, { pid: 3333, isAlive: (pid) => pid !== 999999 })
      yield* state.lock("resume")
      expect(JSON.parse(readFileSync(`${dir}/agent.lock`, "utf8"))).toMatchObject({ pid: 3333, command: "resume" })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("uses the real process table by default: a lock naming this process's parent is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(`${dir}/agent.lock`, JSON.stringify({ pid: process.ppid, since: "now", command: "run" }))
      const state = yield* store(dir)
      const error = yield* Effect.flip(Effect.scoped(state.lock("run")))
      expect(error._tag).toBe("StateLocked")
    }).pipe(Effect.provide(TestPlatform)))
})
