/**
 * Running a skill's tests where a user meets them: `skills test` reports tests that need a grant
 * this run lacks as skipped (with the flag that grants it), counts a test file that registers no
 * tests as a failure (as the agent does), and `approvals retest ID` reruns a pending draft's tests
 * with the same code as the review's `[R]erun`, keeping the new report in the approval.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { allPassed, summarize } from "../../src/core/testHarness.ts"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCli } from "../support/cli.ts"
import { draftWorkspace, fileApproval } from "../support/draftApproval.ts"

const freshHome = () => realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-skilltests-")))

describe("skills test", () => {
  it("skips shell_safe's tests that need exec, naming --allow-exec, and exits 0 when nothing failed", () => {
    const home = freshHome()
    const run = runCli(["skills", "test", "shell_safe"], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(ExitCodes.ok)
    const skippedLines = run.stdout.split("\n").filter((line) => line.startsWith("- real commands (exec granted) > "))
    expect(skippedLines.length).toBeGreaterThan(0)
    expect(run.stdout).toContain("    skipped: it needs the exec capability, which this run was not granted (--allow-exec grants it)")
    expect(run.stdout).not.toContain("✗")
    expect(run.stdout).toMatch(new RegExp(`\\d+ passed, 0 failed, ${skippedLines.length} skipped, \\d+ total`))
    expect(run.stdout).toContain(`${skippedLines.length} test(s) need the exec capability and were skipped: run them with \`luallm-agent skills test shell_safe --allow-exec\`.`)
  })

  it("reports skips in --json, and runs every test with --allow-exec", () => {
    const home = freshHome()
    const json = runCli(["skills", "test", "shell_safe", "--json"], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 })
    const report = JSON.parse(json.stdout)
    const skipped = report.results.filter((result: { status: string }) => result.status === "skip")
    expect(skipped.length).toBeGreaterThan(0)
    expect(report).toMatchObject({ failed: 0, skipped: skipped.length, passed: report.total - skipped.length })

    const granted = runCli(["skills", "test", "shell_safe", "--allow-exec", "--json"], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 })
    expect(granted.code).toBe(ExitCodes.ok)
    expect(JSON.parse(granted.stdout)).toMatchObject({ failed: 0, skipped: 0, passed: report.total })
  })

  it("a draft whose test file registers no tests exits 1 with a sentence saying so, like the agent", () => {
    const home = freshHome()
    const drafts = join(home, ".local", "state", "luallm-agent", "drafts")
    mkdirSync(drafts, { recursive: true })
    writeFileSync(join(drafts, "csv_sum.js"), `/* @skill {"name": "csv_sum", "version": "1.0.0", "public_functions": ["run"]} */\nexport function run() { return 1 }\n`)
    writeFileSync(join(drafts, "csv_sum.test.js"), "// the model sent code where the tests belong\nexport function run() { return 1 }\n")
    const run = runCli(["skills", "test", "csv_sum", "--draft"], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 })
    expect(run.code).toBe(ExitCodes.failure)
    expect(run.stdout).toContain("0 passed, 0 failed, 0 total")
    expect(run.stderr.trim()).toBe(
      `error: The tests of skill csv_sum (${join(drafts, "csv_sum.test.js")}) register no tests, so nothing shows that it works; ` +
        `the agent treats a draft like this as failing. Write tests in ${join(drafts, "csv_sum.test.js")} with test(name, fn) and assert.*.`
    )
  })
})

describe("skipped tests prove nothing", () => {
  const result = (status: "pass" | "fail" | "skip") => ({ name: status, status, error: null, duration_ms: 1 })

  it("a run with a skip is not a passing run, for the agent and for approval", () => {
    const report = summarize([result("pass"), result("skip")])
    expect(report).toMatchObject({ total: 2, passed: 1, failed: 0, skipped: 1 })
    expect(allPassed(report)).toBe(false)
    expect(allPassed(summarize([]))).toBe(false)
    expect(allPassed(summarize([result("pass")]))).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------

const header = `/* @skill {"name": "csv_sum", "version": "1.0.0", "description": "sums", "public_functions": ["run", "sum"]} */\n`
const passingCode = `${header}export function sum(xs) { return xs.reduce((a, b) => a + b, 0) }\nexport function run({ xs }) { return sum(xs) }\n`
const failingCode = `${header}export function sum(xs) { return xs.length }\nexport function run({ xs }) { return sum(xs) }\n`
const tests = `const { sum } = require("csv_sum")\n\ntest("adds the numbers", () => {\n  assert.equal(sum([2, 3]), 5)\n})\n`

const setup = () => draftWorkspace(passingCode, tests)

describe("approvals retest", () => {
  it.effect("reruns the draft's tests, keeps the new report in the approval, and exits 1 while a test fails", () =>
    Effect.gen(function*() {
      const context = setup()
      const record = yield* fileApproval(context, { total: 1, passed: 1, failed: 0, results: [] }, ["run", "sum"])
      const id = record.id.slice(0, 8)
      const cli = (args: ReadonlyArray<string>) => runCli(args, { env: context.env, cwd: context.home, timeoutMs: 60_000 })

      // The reviewer edits the draft and breaks it: the rerun says so, and so does the record.
      writeFileSync(context.codePath, failingCode)
      const failed = cli(["approvals", "retest", id])
      expect(failed.code).toBe(ExitCodes.failure)
      expect(failed.stderr).toContain("running the tests of csv_sum…")
      expect(failed.stdout).toContain("test results: 0 passed, 1 failed, 1 total")
      expect(failed.stdout).toContain("❌ adds the numbers: AssertionError: expected 2 to equal 5")
      const shown = JSON.parse(cli(["approvals", "show", id, "--json"]).stdout)
      expect(shown.test_report).toMatchObject({ total: 1, passed: 0, failed: 1 })
      // The review shows what the rerun ran: the broken code.
      expect(shown.code_sha256).not.toBe(record.code_sha256)
      expect(cli(["approvals", "approve", id]).code).toBe(ExitCodes.failure)

      // Fixed again: the rerun passes, and the approval can now be given.
      writeFileSync(context.codePath, passingCode)
      const passed = cli(["approvals", "retest", id, "--json"])
      expect(passed.code).toBe(ExitCodes.ok)
      expect(JSON.parse(passed.stdout)).toMatchObject({ id: record.id, status: "pending", test_report: { total: 1, passed: 1, failed: 0 } })
      const approve = cli(["approvals", "approve", id])
      expect(approve.code).toBe(ExitCodes.ok)
      expect(approve.stdout).toContain("approved and promoted csv_sum")

      // A decided approval is not retested: a decision is final.
      const again = cli(["approvals", "retest", id])
      expect(again.code).toBe(ExitCodes.failure)
      expect(again.stderr.trim()).toBe(`error: Approval ${record.id} was already approved; a decision is final. Run the task again to draft a new version.`)
    }))

  it.effect("an approval whose report has a skipped test cannot be approved", () =>
    Effect.gen(function*() {
      const context = setup()
      const record = yield* fileApproval(context, { total: 2, passed: 1, failed: 0, skipped: 1, results: [] }, ["run", "sum"])
      const approve = runCli(["approvals", "approve", record.id.slice(0, 8)], { env: context.env, cwd: context.home })
      expect(approve.code).toBe(ExitCodes.failure)
      expect(approve.stderr).toContain("its last test run did not pass (1/2)")
    }))
})
