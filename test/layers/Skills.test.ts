import { describe, expect, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { SkillRunner, SkillRunnerLive } from "../../src/layers/SkillRunner.ts"
import { type SkillInvalid, Skills, SkillsLive } from "../../src/layers/Skills.ts"
import { auditEvents, header, makeFixture, sandboxTestLayer } from "./sandboxTestKit.ts"

const fixture = makeFixture()
afterAll(() => fixture.cleanup())

const { agent_dir: drafts, allowed_dir: approved, builtin_dir: builtin } = fixture.config.skills
cpSync(join(import.meta.dirname, "..", "fixtures", "skills"), approved, { recursive: true })
writeFileSync(join(builtin, "csv_rows.js"), `${header({ name: "csv_rows" })}export const run = () => "the shipped copy"\n`)
writeFileSync(join(builtin, "shipped_only.js"), `${header({ name: "shipped_only" })}export const run = () => "shipped"\n`)
writeFileSync(
  join(drafts, "draft_writer.js"),
  `${header({ name: "draft_writer", paths: ["~/data/**"] })}export function run(args) { fs.writeFile("~/data/report.txt", args.text); return fs.readFile("~/data/report.txt") }\n`
)
writeFileSync(join(drafts, "draft_writer.test.js"), `test("writes", () => assert.equal(require("draft_writer").run({ text: "t" }), "t"))\n`)
mkdirSync(join(fixture.home, "ordered"))
for (const [name, deps] of [["base", []], ["mid", ["base"]], ["top", ["mid", "base"]]] as const) {
  writeFileSync(join(fixture.home, "ordered", `${name}.js`), `${header({ name, dependencies: deps })}export const run = () => 1\n`)
}
writeFileSync(join(fixture.data, "words.txt"), "one two three\nfour\n")

const problemsOf = (error: SkillInvalid | { readonly _tag: "AuditWriteError" }) => (error._tag === "SkillInvalid" ? error.problems : [])

const testLayer = SkillRunnerLive.pipe(
  Layer.provideMerge(SkillsLive),
  Layer.provideMerge(sandboxTestLayer(fixture)),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["HOME", fixture.home]]))))
)

layer(testLayer)("Skills", (it) => {
  describe("parseMetadata", () => {
    it.effect("reads a header without running the skill", () =>
      Effect.gen(function*() {
        const meta = yield* (yield* Skills).parseMetadata(join(approved, "word_count.js"))
        expect(meta).toMatchObject({ name: "word_count", version: "1.0.0", paths: ["~/data/**"], public_functions: ["run", "count"], args: { path: "string, the file to count" } })
      }))

    it.effect("names the file and the JSON problem of a broken header", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).parseMetadata(join(approved, "bad_header.js")))
        expect(error._tag).toBe("MetadataInvalid")
        expect(error.message).toContain(`The skill header of ${join(approved, "bad_header.js")}:1 is invalid: the header is not JSON`)
      }))

    it.effect("says when the file cannot be read", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).parseMetadata(join(approved, "absent.js")))
        expect(error._tag).toBe("SkillUnreadable")
        expect(error.message).toContain(`Could not read ${join(approved, "absent.js")}`)
      }))
  })

  describe("load", () => {
    it.effect("finds a skill in the first directory that has it", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        expect((yield* skills.load("csv_rows")).file).toBe(join(approved, "csv_rows.js"))
        expect((yield* skills.load("shipped_only")).file).toBe(join(builtin, "shipped_only.js"))
      }))

    it.effect("refuses a name that is a path", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).load("../outside/secret"))
        expect(error._tag).toBe("InvalidSkillName")
        expect(error.message).toContain("\"../outside/secret\" is not a skill name")
      }))

    it.effect("lists where it looked for a missing skill", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).load("nowhere"))
        expect(error._tag).toBe("SkillNotFound")
        expect(error.message).toBe(`No skill nowhere: looked for nowhere.js in ${approved}, ${builtin}. Check the name with \`luallm-agent skills list\`.`)
      }))

    it.effect("refuses a file whose header names another skill", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).load("wrong_name"))
        expect(error._tag).toBe("MetadataInvalid")
        expect(error.message).toContain("it declares the name \"another_name\" but the file is wrong_name.js")
      }))
  })

  describe("resolveDependencies", () => {
    it.effect("returns every dependency, dependencies first", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        const top = yield* skills.load("top", [join(fixture.home, "ordered")])
        const order = yield* skills.resolveDependencies(top.meta, [join(fixture.home, "ordered")])
        expect(order.map((s) => s.meta.name)).toEqual(["base", "mid"])
      }))

    it.effect("reports a cycle with its path", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        const error = yield* Effect.flip(Effect.flatMap(skills.load("cycle_a"), (s) => skills.resolveDependencies(s.meta)))
        expect(error._tag).toBe("DependencyCycle")
        expect(error.message).toBe("Skill dependencies form a cycle: cycle_a → cycle_b → cycle_a. Remove one of these dependencies.")
      }))

    it.effect("reports a missing dependency and who needs it", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        const error = yield* Effect.flip(Effect.flatMap(skills.load("needs_missing"), (s) => skills.resolveDependencies(s.meta)))
        expect(error._tag).toBe("DependencyMissing")
        expect(error.message).toContain("Skill needs_missing depends on not_there, which is not in")
      }))
  })

  describe("list", () => {
    it.effect("lists skills by file, skipping tests and keeping broken ones as errors", () =>
      Effect.gen(function*() {
        const listing = yield* (yield* Skills).list(approved)
        expect(listing.map((l) => [l._tag, l.file.slice(approved.length + 1)])).toEqual([
          ["Invalid", "bad_header.js"],
          ["Valid", "broken_tests.js"],
          ["Valid", "csv_rows.js"],
          ["Valid", "cycle_a.js"],
          ["Valid", "cycle_b.js"],
          ["Valid", "missing_function.js"],
          ["Valid", "mixed_results.js"],
          ["Valid", "needs_missing.js"],
          ["Valid", "uses_csv.js"],
          ["Valid", "word_count.js"],
          ["Invalid", "wrong_name.js"]
        ])
      }))

    it.effect("an absent directory has no skills", () =>
      Effect.gen(function*() {
        expect(yield* (yield* Skills).list(join(fixture.home, "never-created"))).toEqual([])
      }))
  })

  describe("validate", () => {
    it.effect("accepts a skill whose functions exist and whose paths are allowed", () =>
      Effect.gen(function*() {
        expect((yield* (yield* Skills).validate(join(approved, "word_count.js"))).name).toBe("word_count")
      }))

    it.effect("names every problem: paths outside allowed_paths and missing functions", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* Skills).validate(join(approved, "missing_function.js")))
        expect(error._tag).toBe("SkillInvalid")
        expect(problemsOf(error)).toEqual([
          `the declared path "/etc/**" is not inside allowed_paths (${fixture.data}/**)`,
          "the public function helper is not exported (it exports run)"
        ])
      }))

    it.effect("reports a dependency problem and a broken header", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        const missing = yield* Effect.flip(skills.validate(join(approved, "needs_missing.js")))
        expect(problemsOf(missing)[0]).toContain("depends on not_there")
        const broken = yield* Effect.flip(skills.validate(join(approved, "bad_header.js")))
        expect(problemsOf(broken)[0]).toContain("the header is not JSON")
      }))
  })
})

layer(testLayer)("SkillRunner", (it) => {
  describe("execute", () => {
    it.effect("runs a skill and audits its start and end with the duration", () =>
      Effect.gen(function*() {
        const outcome = yield* (yield* SkillRunner).execute("csv_rows", { text: "a,b\n\"c, d\",e\n" })
        expect(outcome.result).toEqual([["a", "b"], ["c, d", "e"]])
        expect(outcome.output).toBe("")
        expect(yield* auditEvents("skill.start")).toContainEqual({ skill: "csv_rows", version: "1.2.0", file: join(approved, "csv_rows.js"), mode: "trusted" })
        expect((yield* auditEvents("skill.end")).find((e) => e["skill"] === "csv_rows")).toMatchObject({ duration_ms: expect.any(Number) })
      }))

    it.effect("runs a skill with its dependency and a skill reading a declared file", () =>
      Effect.gen(function*() {
        const runner = yield* SkillRunner
        expect((yield* runner.execute("uses_csv", { text: "a\nb\nc\n" })).result).toEqual({ rows: 3 })
        expect((yield* runner.execute("word_count", { path: "~/data/words.txt" })).result).toEqual({ lines: 2, words: 4, chars: 19 })
      }))

    it.effect("audits a failed run as skill.error with the error's tag", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* SkillRunner).execute("csv_rows", {}))
        expect(error._tag).toBe("SkillThrew")
        expect((yield* auditEvents("skill.error")).at(-1)).toMatchObject({ skill: "csv_rows", error: "SkillThrew", message: expect.stringContaining("args.text must be a string") })
      }))

    it.effect("runs a draft in draft mode: its writes land in the scratch directory", () =>
      Effect.gen(function*() {
        const scratch = join(fixture.home, "runner-scratch")
        const outcome = yield* (yield* SkillRunner).execute("draft_writer", { text: "draft output" }, { draft: true, scratchDir: scratch })
        expect(outcome.result).toBe("draft output")
        expect(existsSync(join(fixture.data, "report.txt"))).toBe(false)
        expect(readFileSync(join(scratch, fixture.data, "report.txt"), "utf8")).toBe("draft output")
      }))

    it.effect("does not find a draft among the trusted skills", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* SkillRunner).execute("draft_writer", {}))
        expect(error._tag).toBe("SkillNotFound")
      }))
  })

  describe("runTests", () => {
    it.effect("runs a CommonJS skill's tests and audits skill.test with the counts and duration", () =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests("csv_rows")
        expect(report).toMatchObject({ total: 3, passed: 3, failed: 0 })
        expect((yield* auditEvents("skill.test")).at(-1)).toMatchObject({ skill: "csv_rows", total: 3, passed: 3, failed: 0, duration_ms: expect.any(Number) })
      }))

    it.effect("runs an ES module skill's tests, which import the skill by name", () =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests("word_count")
        expect(report.results.map((r) => [r.name, r.status, r.error])).toEqual([
          ["counts an empty text", "pass", null],
          ["counts words across lines", "pass", null],
          ["reads the file it is given", "pass", null]
        ])
      }))

    it.effect("a failing, throwing, hanging or refused test fails alone; the others still run", () =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests("mixed_results")
        expect(report).toMatchObject({ total: 7, passed: 3, failed: 4 })
        const byName = new Map(report.results.map((r) => [r.name, r]))
        expect(byName.get("adds")?.status).toBe("pass")
        expect(byName.get("a wrong expectation fails with both values")?.error).toBe("AssertionError: expected 3 to equal 4 (at " + join(approved, "mixed_results.test.js") + ":4)")
        expect(byName.get("a throwing test fails with its message")?.error).toContain("Error: exploded")
        expect(byName.get("an async test passes")?.status).toBe("pass")
        expect(byName.get("a hanging test fails alone")?.error).toContain("Stopped skill mixed_results: it ran longer than 1 s")
        expect(byName.get("a test reading outside its paths fails alone")?.error).toMatch(/^Refused fs\.readFile\("\/etc\/hostname"\) by skill mixed_results/)
        expect(byName.get("later tests still run")?.status).toBe("pass")
      }))

    it.effect("a test file that does not load is a harness error", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* SkillRunner).runTests("broken_tests"))
        expect(error._tag).toBe("TestFileFailed")
        expect(error.message).toContain("SyntaxError")
      }))

    it.effect("says when a skill has no test file", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip((yield* SkillRunner).runTests("uses_csv"))
        expect(error._tag).toBe("TestFileMissing")
        expect(error.message).toContain(`${join(approved, "uses_csv.test.js")} does not exist`)
      }))

    it.effect("runs a draft's tests in draft mode", () =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests("draft_writer", { draft: true })
        expect(report).toMatchObject({ total: 1, passed: 1 })
        expect(existsSync(join(fixture.data, "report.txt"))).toBe(false)
        expect((yield* auditEvents("skill.test")).at(-1)).toMatchObject({ skill: "draft_writer", mode: "draft" })
      }))
  })
})
