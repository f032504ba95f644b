/**
 * The human side of an approval: the summary a reviewer reads (name, version, files, test
 * results ✅/❌, declared paths, dependencies, capabilities, a warning for any character a
 * reader cannot see, the promotion commands) and the interactive prompt
 * `[V]iew code [R]erun tests [E]dit [Y]es [N]o`, one key at a time. Both show the tested copy
 * (what will be installed), never the live draft file.
 */
import { Prompt } from "@effect/cli"
import { Console, Data, Effect, Option } from "effect"
import { spawnSync } from "node:child_process"
import { sanitizeForTerminal } from "../core/terminalText.ts"
import { allPassed } from "../core/testHarness.ts"
import { ApprovalAlreadyResolved, type ApprovalRecord, Approvals, type TestedCopy } from "../layers/Approvals.ts"
import { Answer } from "../layers/Approver.ts"
import { SkillRunner } from "../layers/SkillRunner.ts"
import { codeView, hiddenCharacterWarnings, reviewed } from "./codeReview.ts"
import { bold, dim, green, red, testCounts, yellow } from "./ui.ts"

const list = (items: ReadonlyArray<string>): string => (items.length === 0 ? "(none)" : items.map(reviewed).join(", "))

/** The tested code and tests as the reviewer reads them (the `[V]iew`). */
export const viewTested = (copy: TestedCopy): string =>
  [codeView("code", copy.codePath, copy.code), codeView("tests", copy.testPath, copy.tests)].join("\n")

/** The reviewer's summary of a record and its tested copy. */
export const describeApproval = (record: ApprovalRecord, copy: TestedCopy, commands: ReadonlyArray<string>): string => {
  const report = record.test_report
  const tests = report.results.map((result) =>
    result.status === "pass"
      ? `    ✅ ${reviewed(result.name)} ${dim(`(${Math.round(result.duration_ms)} ms)`)}`
      : result.status === "skip"
      ? `    ⏭️ ${reviewed(result.name)}: ${yellow(`skipped, ${reviewed(result.error ?? "not run")}`)}`
      : `    ❌ ${reviewed(result.name)}: ${red(reviewed(result.error ?? "failed"))}`
  )
  return [
    `${bold(`Skill ${record.skill_name} ${reviewed(record.version)}`)}  ${dim(`approval ${record.id} (${record.status})`)}`,
    `  ${reviewed(record.metadata.description)}`,
    `  code:  ${copy.codePath}  ${dim(`(the tested copy of ${reviewed(record.code_path)}; this is what is installed)`)}`,
    `  tests: ${copy.testPath}  ${dim(`(the tested copy of ${reviewed(record.test_path)})`)}`,
    `  test results: ${allPassed(report) ? green(testCounts(report)) : red(testCounts(report))}`,
    ...tests,
    `  declared paths: ${list(record.metadata.paths)}`,
    `  dependencies:   ${list(record.metadata.dependencies)}`,
    `  capabilities:   ${list(record.metadata.capabilities)}`,
    ...hiddenCharacterWarnings("code", copy.code),
    ...hiddenCharacterWarnings("tests", copy.tests),
    "  to promote by hand instead (copies the tested copy, then checks the hashes):",
    ...commands.map((command) => `    ${command}`)
  ].join("\n")
}

/** The review's menu keys; Ctrl-C or Ctrl-D leave the approval pending, like `q`. */
const reviewKeys = ["v", "r", "e", "y", "n", "q"] as const
type ReviewKey = (typeof reviewKeys)[number]

const isReviewKey = (key: string): key is ReviewKey => (reviewKeys as ReadonlyArray<string>).includes(key)

const Action = Data.taggedEnum<Prompt.Prompt.ActionDefinition>()

/**
 * The review menu as an @effect/cli prompt that answers on a single key (no Enter): `Prompt.confirm`
 * does the same for y/n, and `Prompt.select` would need arrow keys for a five-way choice.
 */
const reviewMenu: Prompt.Prompt<ReviewKey> = Prompt.custom<null, ReviewKey>(null, {
  render: (_, action) =>
    Effect.succeed(
      action._tag === "Beep"
        ? "\u0007"
        : action._tag === "Submit"
        ? `${action.value}\n`
        : `\n${bold("[V]")}iew code  ${bold("[R]")}erun tests  ${bold("[E]")}dit  ${bold("[Y]")}es (promote)  ${bold("[N]")}o (reject)  ${dim("[Q]uit")} `
    ),
  process: (input) => {
    const key = (Option.getOrUndefined(input.input) ?? "").toLowerCase()
    if (isReviewKey(key)) return Effect.succeed(Action.Submit({ value: key }))
    if (input.key.ctrl && (input.key.name === "d" || input.key.name === "c")) return Effect.succeed(Action.Submit({ value: "q" as const }))
    return Effect.succeed(Action.Beep())
  },
  clear: () => Effect.succeed("")
})

/** A key from the menu; leaving the terminal (Ctrl-C) is `q`. */
const readKey = Prompt.run(reviewMenu).pipe(Effect.catchTag("QuitException", () => Effect.succeed<ReviewKey>("q")))

/** The reason for a rejection (empty when the reviewer gives none or leaves). */
const readReason = Prompt.run(Prompt.text({ message: "Reason for rejecting (shown in the task's failure)" })).pipe(
  Effect.map((reason) => reason.trim()),
  Effect.catchTag("QuitException", () => Effect.succeed(""))
)

/**
 * Reruns the tests of a pending approval's draft in the sandbox, in draft mode (the `[R]erun`,
 * the `[E]dit` that follows an edit, and `approvals retest`): the live draft in
 * skills.agent_dir, because that is what a human may have edited, and what approving checks is
 * still the tested copy. The record then holds the new report and the copy this run read.
 */
export const retest = (approvalId: string) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const runner = yield* SkillRunner
    const record = yield* approvals.get(approvalId)
    if (record.status !== "pending") return yield* new ApprovalAlreadyResolved({ id: record.id, status: record.status })
    yield* Console.error(dim(`running the tests of ${record.skill_name}…`))
    const run = yield* runner.runTests(record.skill_name, { draft: true })
    const { failed, passed, results, skipped, total } = run
    return yield* approvals.updateTests(record.id, { total, passed, failed, ...(skipped === undefined ? {} : { skipped }), results }, run.tested)
  })

/**
 * The interactive review of one pending approval, as the terminal's `Approver` asks it: the
 * summary, then one key at a time. Rerun and Edit refresh the record's test results (an edited
 * draft must pass its tests again before it can be approved). The answer is returned for the
 * agent to record; `q` (or Ctrl-C) leaves it undecided.
 */
export const reviewInteractively = (approvalId: string) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const summary = (record: ApprovalRecord) =>
      Effect.flatMap(approvals.tested(record), (copy) => Console.log(describeApproval(record, copy, approvals.promotionCommands(record))))
    /** Reruns the tests and shows the new summary; tests that cannot run are said so, and the menu stays. */
    const retestShown = (current: ApprovalRecord) =>
      retest(current.id).pipe(
        Effect.tap(summary),
        Effect.catchAll((error) => Effect.as(Console.error(red(`the tests could not run again: ${sanitizeForTerminal(error.message)}`)), current))
      )
    let record = yield* approvals.get(approvalId)
    yield* summary(record)
    for (;;) {
      const key = yield* readKey
      if (key === "v") {
        yield* Console.log(viewTested(yield* approvals.tested(record)))
      } else if (key === "r") {
        record = yield* retestShown(record)
      } else if (key === "e") {
        const editor = process.env["VISUAL"] ?? process.env["EDITOR"] ?? "vi"
        spawnSync(editor, [record.code_path], { stdio: "inherit" })
        record = yield* retestShown(record)
      } else if (key === "y") {
        return Answer.Yes({ by: "the terminal" })
      } else if (key === "n") {
        return Answer.No({ by: "the terminal", reason: yield* readReason })
      } else {
        return Answer.Later()
      }
    }
  })
