/**
 * The five shipped skills (SPEC part 16), run the way `skills test NAME` and the agent run
 * them: loaded by `Skills` from `skills.builtin_dir`, executed by `SkillRunner` in the QuickJS
 * sandbox (trusted mode), with `allowed_paths` covering one temporary directory. First every
 * skill's own `<name>.test.js` must pass; then the refusals are checked from the host side,
 * where the sandbox's typed errors (which end a run, so no in-sandbox test can pass through
 * them) are visible.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import type { Json } from "../../src/core/config.ts"
import { AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { type AgentConfig, AppConfigFrom, defaultConfig } from "../../src/layers/Config.ts"
import { sandboxLayer } from "../../src/layers/Sandbox.ts"
import { type RunOptions, SkillRunner, SkillRunnerLive } from "../../src/layers/SkillRunner.ts"
import { Skills, SkillsLive } from "../../src/layers/Skills.ts"
import { builtinSkillsDir } from "../../src/packageRoot.ts"

const root = realpathSync(mkdtempSync(join(tmpdir(), "luallm-samples-")))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** The only allowed directory. */
const files = join(root, "files")
/** A sibling of `files` that no glob allows. */
const outside = join(root, "outside")
for (const dir of [files, outside]) mkdirSync(dir, { recursive: true })

const defaults = defaultConfig({ home: root, cwd: root, builtinSkillsDir })
const config: AgentConfig = {
  ...defaults,
  allowed_paths: [`${files}/**`],
  skills: { allowed_dir: join(root, "approved"), agent_dir: join(root, "drafts"), builtin_dir: builtinSkillsDir },
  state_dir: join(root, "state"),
  audit: { ...defaults.audit, path: join(root, "state", "audit.jsonl") }
}

const samplesLayer = SkillRunnerLive.pipe(
  Layer.provideMerge(SkillsLive),
  Layer.provideMerge(sandboxLayer({ home: root, cwd: root })),
  Layer.provideMerge(AuditTest),
  Layer.provideMerge(AppConfigFrom(config, { home: root, cwd: root })),
  Layer.provideMerge(NodeContext.layer)
)

const execute = (name: string, args: Json, options: RunOptions = {}) =>
  Effect.flatMap(SkillRunner, (runner) => runner.execute(name, args, options))

const refusal = (name: string, args: Json, options: RunOptions = {}) => Effect.flip(execute(name, args, options))

/** The commands the sandbox actually ran in this test file so far. */
const commandsRun = Effect.map(
  Effect.flatMap(AuditMemory, (memory) => memory.entries),
  (entries) => entries.filter((e) => e.event === "sandbox.exec").map((e) => e.data["command"])
)

const samples = [
  { name: "read_file", minTests: 9, grantExec: false },
  { name: "write_file", minTests: 17, grantExec: false },
  { name: "read_csv", minTests: 31, grantExec: false },
  { name: "write_markdown", minTests: 17, grantExec: false },
  { name: "shell_safe", minTests: 22, grantExec: true }
] as const

layer(samplesLayer, { timeout: 120_000 })("shipped sample skills", (it) => {
  describe("headers", () => {
    it.effect("skills/ holds exactly the five samples, each with a valid header and a test file", () =>
      Effect.gen(function*() {
        const listed = yield* (yield* Skills).list(builtinSkillsDir)
        expect(listed.map((l) => (l._tag === "Valid" ? l.meta.name : l.error.message))).toEqual(
          ["read_csv", "read_file", "shell_safe", "write_file", "write_markdown"]
        )
        for (const { name } of samples) expect(existsSync(join(builtinSkillsDir, `${name}.test.js`))).toBe(true)
      }))

    it.effect("each header tells the planner what its arguments mean; only shell_safe asks for exec", () =>
      Effect.gen(function*() {
        const skills = yield* Skills
        const expectedArgs: Record<string, ReadonlyArray<string>> = {
          read_file: ["path"],
          write_file: ["path", "content", "overwrite"],
          read_csv: ["path", "has_header"],
          write_markdown: ["title", "sections", "output_path", "overwrite"],
          shell_safe: ["command", "args"]
        }
        for (const { name } of samples) {
          const meta = yield* skills.parseMetadata(join(builtinSkillsDir, `${name}.js`))
          expect(Object.keys(meta.args ?? {}), name).toEqual(expectedArgs[name])
          expect(meta.description.length, name).toBeGreaterThan(100)
          expect(meta.capabilities, name).toEqual(name === "shell_safe" ? ["exec"] : [])
        }
      }))
  })

  describe("in-sandbox tests (what `skills test NAME` runs)", () => {
    it.effect.each(samples)("$name: every test of its .test.js passes", ({ grantExec, minTests, name }) =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests(name, { grantExec })
        expect(report.results.filter((r) => r.status === "fail")).toEqual([])
        expect(report.failed).toBe(0)
        expect(report.total).toBeGreaterThanOrEqual(minTests)
      }))

    it.effect("shell_safe: without the exec grant the tests that run real commands are skipped, saying which grant they need; none fails", () =>
      Effect.gen(function*() {
        const report = yield* (yield* SkillRunner).runTests("shell_safe")
        const skipped = report.results.filter((r) => r.status === "skip")
        expect(skipped.map((r) => r.name.split(" > ")[0])).toEqual(Array(7).fill("real commands (exec granted)"))
        for (const result of skipped) expect(result.error).toBe("it needs the exec capability, which this run was not granted (--allow-exec grants it)")
        expect(report).toMatchObject({ failed: 0, skipped: 7, passed: report.total - 7 })
      }))
  })

  describe("read_file", () => {
    it.effect("reads a file inside allowed_paths", () =>
      Effect.gen(function*() {
        writeFileSync(join(files, "notes.txt"), "first\nsecond — ü\n")
        expect((yield* execute("read_file", { path: join(files, "notes.txt") })).result).toBe("first\nsecond — ü\n")
        expect((yield* execute("read_file", { path: "~/files/notes.txt" })).result).toBe("first\nsecond — ü\n")
      }))

    it.effect("is refused a file outside allowed_paths although it declares /**", () =>
      Effect.gen(function*() {
        writeFileSync(join(outside, "secret.txt"), "secret")
        const error = yield* refusal("read_file", { path: join(outside, "secret.txt") })
        expect(error._tag).toBe("PathNotAllowed")
        expect(error.message).toBe(
          `Refused fs.readFile("${join(outside, "secret.txt")}") by skill read_file: ${join(outside, "secret.txt")} is outside allowed_paths (${files}/**). Add a matching glob to allowed_paths in the config if the skill should reach it.`
        )
      }))

    it.effect("is refused a path that climbs out with .. or a symlink that points outside", () =>
      Effect.gen(function*() {
        const climbing = yield* refusal("read_file", { path: `${files}/../outside/secret.txt` })
        expect(climbing._tag === "PathNotAllowed" && climbing.reason).toBe("parent_segment")
        symlinkSync(join(outside, "secret.txt"), join(files, "link.txt"))
        const linked = yield* refusal("read_file", { path: join(files, "link.txt") })
        expect(linked._tag === "PathNotAllowed" && linked.reason).toBe("symlink_escape")
      }))

    it.effect("reports a missing file as the skill's own error, with the path", () =>
      Effect.gen(function*() {
        const error = yield* refusal("read_file", { path: join(files, "missing.txt") })
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain(`Skill read_file threw Error: cannot read ${join(files, "missing.txt")}: fs.readFile: ENOENT: no such file or directory`)
      }))
  })

  describe("write_file", () => {
    it.effect("writes a new file, creating its parent directories, and reports its size on disk", () =>
      Effect.gen(function*() {
        const path = join(files, "new", "deep", "out.txt")
        const { result } = yield* execute("write_file", { path, content: "héllo 😀\n" })
        expect(readFileSync(path, "utf8")).toBe("héllo 😀\n")
        expect(result).toEqual({ path, bytes: statSync(path).size })
      }))

    it.effect("refuses to overwrite without overwrite: true, leaving the file unchanged, and replaces it with it", () =>
      Effect.gen(function*() {
        const path = join(files, "keep.txt")
        writeFileSync(path, "original")
        const error = yield* refusal("write_file", { path, content: "replacement" })
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain(`${path} already exists and was left unchanged; pass "overwrite": true to replace it`)
        expect(readFileSync(path, "utf8")).toBe("original")
        yield* execute("write_file", { path, content: "replacement", overwrite: true })
        expect(readFileSync(path, "utf8")).toBe("replacement")
      }))

    it.effect("is refused outside allowed_paths, and creates no directory there", () =>
      Effect.gen(function*() {
        const error = yield* refusal("write_file", { path: join(outside, "made", "x.txt"), content: "x" })
        expect(error._tag === "PathNotAllowed" && error.reason).toBe("not_allowed")
        expect(existsSync(join(outside, "made"))).toBe(false)
      }))

    it.effect("is refused the shipped skills directory, which belongs to luallm-agent", () =>
      Effect.gen(function*() {
        const error = yield* refusal("write_file", { path: join(builtinSkillsDir, "read_file.js"), content: "x", overwrite: true })
        expect(error._tag === "PathNotAllowed" && error.reason).toBe("protected")
      }))
  })

  describe("read_csv", () => {
    it.effect("reads a CSV file into objects keyed by the header, or into arrays", () =>
      Effect.gen(function*() {
        const path = join(files, "people.csv")
        writeFileSync(path, "\ufeffname,note\r\n\"Doe, Jane\",\"said \"\"hi\"\"\nthen left\"\r\nBo,\r\n")
        expect((yield* execute("read_csv", { path })).result).toEqual([
          { name: "Doe, Jane", note: "said \"hi\"\nthen left" },
          { name: "Bo", note: "" }
        ])
        expect((yield* execute("read_csv", { path, has_header: false })).result).toEqual([
          ["name", "note"],
          ["Doe, Jane", "said \"hi\"\nthen left"],
          ["Bo", ""]
        ])
      }))

    it.effect("names the file and the line of a ragged row", () =>
      Effect.gen(function*() {
        const path = join(files, "ragged.csv")
        writeFileSync(path, "a,b\n1,2\n3\n")
        const error = yield* refusal("read_csv", { path })
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain(`CsvError: ${path}: ragged rows: line 3 has 1; every row must have 2 fields like the header on line 1.`)
      }))

    it.effect("reads through read_file, so it is refused outside allowed_paths too", () =>
      Effect.gen(function*() {
        writeFileSync(join(outside, "t.csv"), "a\n1\n")
        const error = yield* refusal("read_csv", { path: join(outside, "t.csv") })
        expect(error._tag === "PathNotAllowed" && error.skill).toBe("read_file")
      }))
  })

  describe("write_markdown", () => {
    const document = { title: "Report *v2*", sections: [{ heading: "Summary", body: "All **green**." }] }

    it.effect("renders and writes the document through write_file, refusing to overwrite it afterwards", () =>
      Effect.gen(function*() {
        const path = join(files, "reports", "week.md")
        const { result } = yield* execute("write_markdown", { ...document, output_path: path })
        const text = "# Report \\*v2\\*\n\n## Summary\n\nAll **green**.\n"
        expect(readFileSync(path, "utf8")).toBe(text)
        expect(result).toEqual({ path, bytes: text.length })
        const error = yield* refusal("write_markdown", { ...document, title: "Other", output_path: path })
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain("write_file.run threw Error")
        expect(error.message).toContain("already exists and was left unchanged")
        expect(readFileSync(path, "utf8")).toBe(text)
      }))

    it.effect("is refused outside allowed_paths (by write_file's sandbox)", () =>
      Effect.gen(function*() {
        const error = yield* refusal("write_markdown", { ...document, output_path: join(outside, "r.md") })
        expect(error._tag === "PathNotAllowed" && error.skill).toBe("write_file")
        expect(existsSync(join(outside, "r.md"))).toBe(false)
      }))
  })

  describe("shell_safe", () => {
    it.effect("is refused the exec capability unless the run grants it", () =>
      Effect.gen(function*() {
        const error = yield* refusal("shell_safe", { command: "ls", args: [] })
        expect(error._tag === "CapabilityDenied" && error.reason).toBe("not_granted")
      }))

    it.effect("refuses a command outside the whitelist itself, before the host is asked", () =>
      Effect.gen(function*() {
        const before = (yield* commandsRun).length
        const error = yield* refusal("shell_safe", { command: "rm", args: ["-rf", files] }, { grantExec: true })
        expect(error._tag).toBe("SkillThrew")
        expect(error.message).toContain("\"rm\" is not an allowed command: only ls, wc, head, tail, grep, find, cat, sort, uniq may run")
        expect((yield* commandsRun).length).toBe(before)
        expect(existsSync(files)).toBe(true)
      }))

    it.effect("runs a whitelisted command on a file inside allowed_paths", () =>
      Effect.gen(function*() {
        writeFileSync(join(files, "lines.txt"), "a\nb\nc\n")
        const { result } = yield* execute("shell_safe", { command: "wc", args: ["-l", "~/files/lines.txt"] }, { grantExec: true })
        expect(result).toEqual({ stdout: `3 ${join(files, "lines.txt")}\n`, stderr: "", code: 0, truncated: false })
      }))

    it.effect("searches for metacharacters as literal text", () =>
      Effect.gen(function*() {
        writeFileSync(join(files, "inject.txt"), "plain\nrun $(whoami) now; rm -rf ~ && echo `id`\n")
        const { result } = yield* execute("shell_safe", { command: "grep", args: ["-F", "$(whoami) now; rm -rf ~ && echo `id`", join(files, "inject.txt")] }, { grantExec: true })
        expect(result).toEqual({ stdout: "run $(whoami) now; rm -rf ~ && echo `id`\n", stderr: "", code: 0, truncated: false })
      }))

    it.effect("grep for \"; rm -rf /\" runs nothing but grep and deletes nothing", () =>
      Effect.gen(function*() {
        writeFileSync(join(files, "canary.txt"), "still here")
        const before = (yield* commandsRun).length
        yield* Effect.either(execute("shell_safe", { command: "grep", args: ["; rm -rf /", join(files, "canary.txt")] }, { grantExec: true }))
        expect((yield* commandsRun).slice(before).every((command) => command === "grep")).toBe(true)
        expect(readFileSync(join(files, "canary.txt"), "utf8")).toBe("still here")
      }))

    it.effect("is refused a path argument outside allowed_paths", () =>
      Effect.gen(function*() {
        const error = yield* refusal("shell_safe", { command: "cat", args: ["/etc/passwd"] }, { grantExec: true })
        expect(error._tag).toBe("PathNotAllowed")
        expect(error.message).toContain("Refused exec cat(\"/etc/passwd\") by skill shell_safe: /etc/passwd is outside allowed_paths")
      }))

    it.effect("is refused options that would run programs or write files (the host's own check)", () =>
      Effect.gen(function*() {
        const error = yield* refusal("shell_safe", { command: "find", args: [files, "-exec", "rm", "{}", ";"] }, { grantExec: true })
        expect(error._tag).toBe("CommandNotAllowed")
        expect(error.message).toBe("Refused exec(\"find\") by skill shell_safe: find's -exec runs programs. The whitelist is fixed: change the skill to do this another way.")
        expect(existsSync(join(files, "lines.txt"))).toBe(true)
      }))

    it.effect("caps a large output below the result limit and says it was truncated", () =>
      Effect.gen(function*() {
        writeFileSync(join(files, "big.txt"), "0123456789abcdef\n".repeat(200_000))
        const { result } = yield* execute("shell_safe", { command: "cat", args: [join(files, "big.txt")] }, { grantExec: true })
        expect(result).toMatchObject({ truncated: true, stderr: "" })
        expect(JSON.stringify(result).length).toBeLessThan(1024 * 1024)
      }))
  })
})
