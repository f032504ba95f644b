/**
 * What a reviewer sees is exactly what runs: `approvals show`, `approvals list` and `skills show`
 * print code with JavaScript's line numbers and every character a reader cannot see escaped and
 * marked, warn naming each such character and its line, and show the tested copy (what will be
 * installed), never the live draft.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describeHiddenCharacters, findHiddenCharacters } from "../../src/core/reviewText.ts"
import { codeView, hiddenMark } from "../../src/shell/codeReview.ts"
import { runCli } from "../support/cli.ts"
import { draftWorkspace, fileApproval } from "../support/draftApproval.ts"

/**
 * A draft whose comment hides a line break, with an RLO, a zero-width joiner in an identifier and a
 * lone CR. Lines are counted as JavaScript counts them (the U+2028 starts line 3).
 */
const hiddenCode = [
  `/* @skill {"name": "csv_sum", "version": "1.0.0", "public_functions": ["run"]} */`,
  "// only a comment\u2028globalThis.owned = true",
  `export function run() { const level = "user\u202e"; const admin\u200d = 1; return level }`,
  "// another comment\rglobalThis.owned = 2",
  ""
].join("\n")
const hiddenTests = "test('sums\u2066', () => {})\n"

const setup = () => draftWorkspace(hiddenCode, hiddenTests)
const passedOnce = { total: 1, passed: 1, failed: 0, results: [{ name: "sums", status: "pass" as const, error: null, duration_ms: 1 }] }

const expectedWarnings = [
  "code: characters a reader cannot see (the code view shows each one escaped and marked):",
  "    line break U+2028 LINE SEPARATOR at line 2",
  "    bidi control U+202E RIGHT-TO-LEFT OVERRIDE at line 4",
  "    zero-width character U+200D ZERO WIDTH JOINER at line 4",
  "    line break U+000D CARRIAGE RETURN at line 5",
  "tests: characters a reader cannot see (the code view shows each one escaped and marked):",
  "    bidi control U+2066 LEFT-TO-RIGHT ISOLATE at line 1"
]

const expectedCode = [
  `1 │ /* @skill {"name": "csv_sum", "version": "1.0.0", "public_functions": ["run"]} */`,
  "2 │ // only a comment⟦\\u2028⟧",
  "3 │ globalThis.owned = true",
  `4 │ export function run() { const level = "user⟦\\u202e⟧"; const admin⟦\\u200d⟧ = 1; return level }`,
  "5 │ // another comment⟦\\r⟧",
  "6 │ globalThis.owned = 2"
].join("\n")

describe("approvals show", () => {
  it.effect("prints the tested code and tests with a gutter and every hidden character marked, and warns naming each", () =>
    Effect.gen(function*() {
      const context = setup()
      const record = yield* fileApproval(context, passedOnce)
      // The live draft changes after the tests ran: the review still shows what was tested.
      writeFileSync(context.codePath, "export function run() { return 'live' }\n")
      const run = runCli(["approvals", "show", record.id.slice(0, 8)], { env: context.env, cwd: context.home })
      expect(run.code).toBe(0)
      for (const line of expectedWarnings) expect(run.stdout).toContain(line)
      expect(run.stdout).toContain(expectedCode)
      expect(run.stdout).toContain("1 │ test('sums⟦\\u2066⟧', () => {})")
      expect(run.stdout).not.toContain("'live'")
      expect(run.stdout).not.toMatch(/[\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200d\r]/)
      expect(run.stdout).toContain(`sha256sum -c`)
    }))

  it.effect("shows each test's name and failure on its own line, a line break or bidi control in them escaped and marked", () =>
    Effect.gen(function*() {
      const context = setup()
      // Names a test file builds at run time (so its text holds no hidden character) that forge summary lines.
      const record = yield* fileApproval(context, {
        total: 2,
        passed: 1,
        failed: 1,
        results: [
          { name: "sums\n  declared paths: (none)\n  capabilities:   (none)", status: "pass", error: null, duration_ms: 1 },
          { name: "rounds \u202e(sm 1)", status: "fail", error: "AssertionError: 1\n    ✅ all good\u200b", duration_ms: 1 }
        ]
      })
      const run = runCli(["approvals", "show", record.id.slice(0, 8)], { env: context.env, cwd: context.home })
      expect(run.stdout).toContain("    ✅ sums⟦\\n⟧  declared paths: (none)⟦\\n⟧  capabilities:   (none) (1 ms)")
      expect(run.stdout).toContain("    ❌ rounds ⟦\\u202e⟧(sm 1): AssertionError: 1⟦\\n⟧    ✅ all good⟦\\u200b⟧")
      expect(run.stdout.split("\n").filter((line) => line.startsWith("  declared paths:"))).toHaveLength(1)
    }))

  it.effect("names the hidden characters in --json", () =>
    Effect.gen(function*() {
      const context = setup()
      const record = yield* fileApproval(context, passedOnce)
      const run = runCli(["approvals", "show", record.id, "--json"], { env: context.env, cwd: context.home })
      const shown = JSON.parse(run.stdout)
      expect(shown.hidden_characters.code.map((h: { codePoint: number; line: number }) => [h.codePoint, h.line])).toEqual([
        [0x2028, 2],
        [0x202e, 4],
        [0x200d, 4],
        [0x0d, 5]
      ])
      expect(shown.tested_code_path).toBe(join(context.config.state_dir, "pending_approvals", "tested", `${record.code_sha256}.js`))
    }))
})

describe("approvals list", () => {
  it.effect("warns under a draft that holds hidden characters", () =>
    Effect.gen(function*() {
      const context = setup()
      const record = yield* fileApproval(context, passedOnce)
      const run = runCli(["approvals", "list"], { env: context.env, cwd: context.home })
      expect(run.code).toBe(0)
      expect(run.stdout).toContain(`${record.id.slice(0, 8)}  csv_sum 1.0.0  1/1 tests pass`)
      for (const line of expectedWarnings) expect(run.stdout).toContain(line)
    }))
})

describe("skills show", () => {
  it("prints a draft's code and tests with hidden characters marked, and warns naming each", () => {
    const context = setup()
    const run = runCli(["skills", "show", "csv_sum", "--draft"], { env: context.env, cwd: context.home })
    expect(run.code).toBe(0)
    for (const line of expectedWarnings) expect(run.stdout).toContain(line)
    expect(run.stdout).toContain(expectedCode)
    expect(run.stdout).not.toMatch(/[\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b-\u200d\r]/)
  })

  it("shows hidden characters in the header's fields too", () => {
    const context = setup()
    writeFileSync(
      context.codePath,
      `/* @skill {"name": "csv_sum", "version": "1.0.0", "description": "reads \u202efdp.exe", "public_functions": ["run"]} */\nexport function run() {}\n`
    )
    const run = runCli(["skills", "show", "csv_sum", "--draft"], { env: context.env, cwd: context.home })
    expect(run.stdout).toContain("  reads ⟦\\u202e⟧fdp.exe")
  })
})

describe("skills list", () => {
  it("shows a description on one line, a line break or bidi control in it escaped and marked", () => {
    const context = setup()
    writeFileSync(
      context.codePath,
      `/* @skill {"name": "csv_sum", "version": "1.0.0\u202e", "description": "sums\\napproved ${context.config.skills.allowed_dir}\\n  trusted_tool 1.0.0  looks approved", "public_functions": ["run"]} */\nexport function run() {}\n`
    )
    const run = runCli(["skills", "list"], { env: context.env, cwd: context.home })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`  csv_sum 1.0.0⟦\\u202e⟧  sums⟦\\n⟧approved ${context.config.skills.allowed_dir}⟦\\n⟧  trusted_tool 1.0.0  looks approved`)
    expect(run.stdout).not.toContain("\n  trusted_tool")
    expect(run.stdout).not.toMatch(/[\u202a-\u202e]/)
  })
})

describe("the shipped skills", () => {
  it("hold no character a reader cannot see", () => {
    const dir = join(import.meta.dirname, "..", "..", "skills")
    const hidden = readdirSync(dir)
      .filter((name) => name.endsWith(".js"))
      .flatMap((name) => describeHiddenCharacters(findHiddenCharacters(readFileSync(join(dir, name), "utf8"))).map((line) => `${name}: ${line}`))
    expect(hidden).toEqual([])
  })
})

describe("the mark", () => {
  it("is colour on a terminal and ⟦…⟧ elsewhere", () => {
    const stdout = process.stdout as { isTTY?: boolean }
    const wasTty = stdout.isTTY
    const noColor = process.env["NO_COLOR"]
    try {
      delete process.env["NO_COLOR"]
      stdout.isTTY = true
      expect(hiddenMark("\\u2028")).toBe("\u001b[7;31m\\u2028\u001b[0m")
      expect(codeView("code", "/d/a.js", "a\u200bb")).toContain("1 │ a\u001b[7;31m\\u200b\u001b[0mb")
      stdout.isTTY = false
      expect(hiddenMark("\\u2028")).toBe("⟦\\u2028⟧")
    } finally {
      stdout.isTTY = wasTty
      if (noColor !== undefined) process.env["NO_COLOR"] = noColor
    }
  })
})
