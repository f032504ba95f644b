import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { draft, Sandbox } from "../../src/layers/Sandbox.ts"
import { auditEvents, header, makeFixture, runRequest, sandboxTestLayer, skillSource } from "./sandboxTestKit.ts"

const fixture = makeFixture()
afterAll(() => fixture.cleanup())

const run = (code: string, args: unknown = {}, options: Parameters<typeof runRequest>[1] = {}) =>
  Effect.flatMap(Sandbox, (sandbox) => sandbox.call(runRequest(skillSource(code), options), "run", args as never))

const failure = (code: string, args: unknown = {}, options: Parameters<typeof runRequest>[1] = {}) => Effect.flip(run(code, args, options))

const dataPaths = header({ paths: ["~/data/**"] })

layer(sandboxTestLayer(fixture))("Sandbox", (it) => {
  describe("module forms", () => {
    it.effect.each([
      ["ES module function", "export function run(args) { return args.n + 1 }"],
      ["ES module async function", "export async function run(args) { await null; return args.n + 1 }"],
      ["ES module const arrow", "export const run = (args) => args.n + 1"],
      ["ES module export list", "function run(args) { return args.n + 1 }\nexport { run }"],
      ["CommonJS module.exports", "function run(args) { return args.n + 1 }\nmodule.exports = { run }"],
      ["CommonJS exports.run", "exports.run = async (args) => args.n + 1"]
    ])("loads a skill written as an %s", ([, code]) =>
      Effect.gen(function*() {
        const outcome = yield* run(header() + code, { n: 41 })
        expect(outcome.result).toBe(42)
      }))

    it.effect("awaits a promise chain inside run", () =>
      Effect.gen(function*() {
        const outcome = yield* run(header() + `export async function run() {
          let total = 0
          for (let i = 0; i < 100; i++) total += await Promise.resolve(i)
          return Promise.all([total, new Promise((resolve) => resolve("done"))])
        }`)
        expect(outcome.result).toEqual([4950, "done"])
      }))

    it.effect("turns an undefined result into null and keeps plain data", () =>
      Effect.gen(function*() {
        expect((yield* run(header() + "export function run() {}")).result).toBeNull()
        expect((yield* run(header() + "export const run = () => ({ a: [1, 'x', true, null], b: { c: 1.5 } })")).result)
          .toEqual({ a: [1, "x", true, null], b: { c: 1.5 } })
      }))
  })

  describe("output", () => {
    it.effect("captures print and console.* in order, objects as JSON", () =>
      Effect.gen(function*() {
        const outcome = yield* run(header() + `export function run() {
          print("a", 1, { x: [2] })
          console.log("b")
          console.warn("c")
          console.error(null, undefined)
          return 0
        }`)
        expect(outcome.output).toBe("a 1 {\"x\":[2]}\nb\nc\nnull undefined\n")
      }))

    it.effect("log() writes the event to the audit log with the skill's name", () =>
      Effect.gen(function*() {
        yield* run(header({ name: "logger" }) + "export function run() { log(\"step\", { rows: 3 }) }")
        expect(yield* auditEvents("skill.log")).toContainEqual({ skill: "logger", event: "step", data: { rows: 3 } })
      }))
  })

  describe("errors the skill makes", () => {
    it.effect("reports a throw with the skill's own message and line", () =>
      Effect.gen(function*() {
        const error = yield* failure(header() + "export function run() {\n  const x = 1\n  throw new RangeError(\"bad row \" + x)\n}")
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toBe("Skill probe threw RangeError: bad row 1 (/virtual/skill.js:4). Fix the skill, or check the arguments it was given.")
      }))

    it.effect("reports a syntax error with its line", () =>
      Effect.gen(function*() {
        const error = yield* failure(header() + "export function run() {\n  let 1x = 2\n}")
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain("threw SyntaxError:")
        expect(error.message).toContain("/virtual/skill.js:3")
      }))

    it.effect("refuses to call a function the skill does not export", () =>
      Effect.gen(function*() {
        const error = yield* failure(header() + "export function main() {}\nexport const value = 1")
        expect(error._tag).toBe("FunctionNotExported")
        expect(error.message).toContain("does not export a function run (it exports main)")
      }))

    it.effect("refuses a result that is not JSON", () =>
      Effect.gen(function*() {
        const error = yield* failure(header() + "export const run = () => ({ big: 10n })")
        expect(error._tag).toBe("ResultNotJson")
        expect(error.message).toContain("TypeError")
      }))

    it.effect("says when run's promise can never settle", () =>
      Effect.gen(function*() {
        const error = yield* failure(header() + "export const run = () => new Promise(() => {})")
        expect(error._tag).toBe("SkillStalled")
        expect(error.message).toContain("run returned a promise that can never settle")
      }))

    it.effect("lets a skill catch an ordinary I/O error", () =>
      Effect.gen(function*() {
        const outcome = yield* run(dataPaths + `export function run() {
          try { fs.readFile("~/data/absent.txt") } catch (e) { return e.message }
        }`)
        expect(outcome.result).toBe("fs.readFile: ENOENT: no such file or directory")
      }))
  })

  describe("fs", () => {
    it.effect("writes, appends, reads, lists and checks files inside the declared and allowed paths", () =>
      Effect.gen(function*() {
        const outcome = yield* run(dataPaths + `export function run() {
          fs.mkdir("~/data/fs1")
          fs.writeFile("~/data/fs1/a.txt", "héllo")
          fs.appendFile("~/data/fs1/a.txt", " world")
          return { text: fs.readFile("~/data/fs1/a.txt"), list: fs.listDir("~/data/fs1"), yes: fs.exists("~/data/fs1/a.txt"), no: fs.exists("~/data/fs1/b.txt") }
        }`)
        expect(outcome.result).toEqual({ text: "héllo world", list: ["a.txt"], yes: true, no: false })
        expect(readFileSync(join(fixture.data, "fs1", "a.txt"), "utf8")).toBe("héllo world")
      }))

    it.effect("audits every access with the operation, the resolved path and the bytes", () =>
      Effect.gen(function*() {
        writeFileSync(join(fixture.data, "audited.txt"), "12345")
        yield* run(header({ name: "auditor", paths: ["~/data/**"] }) + "export const run = () => fs.readFile(\"~/data/audited.txt\")")
        expect(yield* auditEvents("sandbox.fs")).toContainEqual({ skill: "auditor", op: "readFile", path: join(fixture.data, "audited.txt"), bytes: 5 })
      }))

    it.effect("keeps NUL characters in file contents and printed text", () =>
      Effect.gen(function*() {
        const outcome = yield* run(dataPaths + `export function run() {
          fs.writeFile("~/data/nul.txt", "a\\u0000b")
          print("x\\u0000y")
          return fs.readFile("~/data/nul.txt").length
        }`)
        expect(outcome.result).toBe(3)
        expect(readFileSync(join(fixture.data, "nul.txt"), "utf8")).toBe("a\u0000b")
        expect(outcome.output).toBe("x\u0000y\n")
      }))

    it.effect("reads and writes through handles, in chunks, null at the end", () =>
      Effect.gen(function*() {
        const outcome = yield* run(dataPaths + `export function run() {
          const out = fs.open("~/data/handles.txt", "w")
          fs.write(out, "abcdef")
          fs.close(out)
          const input = fs.open("~/data/handles.txt")
          const chunks = []
          for (let chunk = fs.read(input, 4); chunk !== null; chunk = fs.read(input, 4)) chunks.push(chunk)
          fs.close(input)
          return chunks
        }`)
        expect(outcome.result).toEqual(["abcd", "ef"])
      }))

    it.effect("checks argument types and tells the skill what was wrong", () =>
      Effect.gen(function*() {
        const outcome = yield* run(dataPaths + `export function run() {
          const messages = []
          for (const call of [() => fs.readFile(42), () => fs.writeFile("~/data/x.txt", {}), () => fs.read(99), () => fs.open("~/data/x.txt", "rw")]) {
            try { call() } catch (e) { messages.push(e.name + ": " + e.message) }
          }
          return messages
        }`)
        expect(outcome.result).toEqual([
          "TypeError: fs.readFile: the path must be a string, got number",
          "TypeError: fs.writeFile: the data must be a string, got object",
          "TypeError: fs.read: 99 is not an open file handle",
          "TypeError: fs.open: flags must be \"r\", \"w\" or \"a\", got \"rw\""
        ])
      }))
  })

  describe("dependencies", () => {
    const dependency = skillSource(
      header({ name: "upper", public_functions: ["run", "shout"] }) + "export const run = (a) => a.text.toUpperCase()\nexport const shout = (t) => t + '!'",
      "/virtual/upper.js"
    )

    it.effect("require() gives a declared dependency, running in its own sandbox", () =>
      Effect.gen(function*() {
        const outcome = yield* run(
          header({ dependencies: ["upper"] }) + "const upper = require('upper')\nmodule.exports.run = () => upper.shout(upper.run({ text: 'hi' }))",
          {},
          { dependencies: [dependency] }
        )
        expect(outcome.result).toBe("HI!")
      }))

    it.effect("import of a declared dependency works in an ES module", () =>
      Effect.gen(function*() {
        const outcome = yield* run(
          header({ dependencies: ["upper"] }) + "import { shout } from 'upper'\nexport const run = () => shout('yes')",
          {},
          { dependencies: [dependency] }
        )
        expect(outcome.result).toBe("yes!")
      }))

    it.effect("a dependency's throw reaches the caller as an exception it can catch", () =>
      Effect.gen(function*() {
        const failing = skillSource(header({ name: "failing" }) + "export const run = () => { throw new Error('nope') }", "/virtual/failing.js")
        const outcome = yield* run(
          header({ dependencies: ["failing"] }) + "export const run = () => { try { require('failing').run() } catch (e) { return e.message } }",
          {},
          { dependencies: [failing] }
        )
        expect(outcome.result).toBe("failing.run threw Error: nope")
      }))
  })

  describe("draft mode", () => {
    it.effect("sends writes to the scratch directory under the real path and reads them back", () =>
      Effect.gen(function*() {
        const scratch = join(fixture.home, "scratch-1")
        writeFileSync(join(fixture.data, "draft-existing.txt"), "original")
        const outcome = yield* run(dataPaths + `export function run() {
          fs.writeFile("~/data/draft-new.txt", "new")
          fs.appendFile("~/data/draft-existing.txt", " + more")
          return { back: fs.readFile("~/data/draft-existing.txt"), listed: fs.listDir("~/data").includes("draft-new.txt") }
        }`, {}, { mode: draft(scratch) })
        expect(outcome.result).toEqual({ back: "original + more", listed: true })
        expect(readFileSync(join(fixture.data, "draft-existing.txt"), "utf8")).toBe("original")
        expect(existsSync(join(fixture.data, "draft-new.txt"))).toBe(false)
        expect(readFileSync(join(scratch, fixture.data, "draft-new.txt"), "utf8")).toBe("new")
      }))
  })

  describe("exec", () => {
    it.effect("runs a whitelisted command as argv with a checked path argument", () =>
      Effect.gen(function*() {
        writeFileSync(join(fixture.data, "lines.txt"), "a\nb\nc\n")
        const outcome = yield* run(
          header({ paths: ["~/data/**"], capabilities: ["exec"] }) + "export const run = () => exec('wc', ['-l', '~/data/lines.txt'])",
          {},
          { grantExec: true }
        )
        expect(outcome.result).toEqual({ stdout: `3 ${join(fixture.data, "lines.txt")}\n`, stderr: "", code: 0, truncated: false })
      }))
  })

  describe("tests", () => {
    const testRun = (skillCode: string, testCode: string) =>
      Effect.flatMap(Sandbox, (sandbox) =>
        sandbox.runTests(runRequest(skillSource(skillCode, "/virtual/probe.js")), { file: "/virtual/probe.test.js", code: testCode }))

    it.effect("runs each test and reports pass and fail with the assertion's values and line", () =>
      Effect.gen(function*() {
        const { report } = yield* testRun(
          header() + "export const run = (a) => a * 2",
          "import { run } from 'probe'\ntest('doubles', () => assert.equal(run(2), 4))\ntest('wrong', () => {\n  assert.equal(run(2), 5)\n})"
        )
        expect(report).toMatchObject({ total: 2, passed: 1, failed: 1 })
        expect(report.results.map((r) => [r.name, r.status, r.error])).toEqual([
          ["doubles", "pass", null],
          ["wrong", "fail", "AssertionError: expected 4 to equal 5 (at /virtual/probe.test.js:4)"]
        ])
      }))

    it.effect("supports describe, it, deepEqual, notEqual, ok, throws, rejects and match", () =>
      Effect.gen(function*() {
        const { report } = yield* testRun(
          header() + "module.exports = { run: (a) => { if (a < 0) throw new RangeError('negative'); return [a] } }",
          `const { run } = require("./probe.js")
          describe("run", () => {
            it("wraps", () => assert.deepEqual(run(1), [1]))
            it("differs", () => assert.notEqual(run(1), run(1)))
            it("is truthy", () => assert.ok(run(0)))
            it("throws", () => assert.throws(() => run(-1), RangeError))
            it("rejects", async () => { await assert.rejects(async () => run(-1), /negative/) })
            it("matches", () => assert.match(String(run(7)), /^7$/))
          })`
        )
        expect(report.results.map((r) => r.name)).toEqual(["run > wraps", "run > differs", "run > is truthy", "run > throws", "run > rejects", "run > matches"])
        expect(report.failed).toBe(0)
      }))

    it.effect("a test that catches a refusal still fails with it", () =>
      Effect.gen(function*() {
        const { report } = yield* testRun(
          header() + "export const run = () => 1",
          "test('sneaky', () => { try { fs.readFile('/etc/passwd') } catch (e) {} })\ntest('honest', () => assert.ok(true))"
        )
        expect(report.results.map((r) => [r.name, r.status, r.error?.slice(0, 40) ?? null])).toEqual([
          ["sneaky", "fail", "Refused fs.readFile(\"/etc/passwd\") by sk"],
          ["honest", "pass", null]
        ])
      }))

    it.effect("a test file that does not load is a harness error, not a result", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(testRun(header() + "export const run = () => 1", "test('x', () => {\n"))
        expect(error._tag).toBe("TestFileFailed")
        expect(error.message).toContain("could not run: Skill probe threw SyntaxError")
      }))
  })
})
