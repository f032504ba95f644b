/**
 * The human side of an approval: the summary a reviewer reads (name, version, files, test
 * results ✅/❌, declared paths, dependencies, capabilities, a warning for any character a
 * reader cannot see, the promotion commands) and the interactive prompt
 * `[V]iew code [R]erun tests [E]dit [Y]es [N]o`, one key at a time. Both show the tested copy
 * (what will be installed), never the live draft file.
 */
import { Console, Effect } from "effect"
import { spawnSync } from "node:child_process"
import { type ApprovalRecord, Approvals, type TestedCopy } from "../layers/Approvals.ts"
import { SkillRunner } from "../layers/SkillRunner.ts"
import { codeView, hiddenCharacterWarnings, reviewed } from "./codeReview.ts"
import { bold, dim, green, red } from "./ui.ts"

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
      : `    ❌ ${reviewed(result.name)}: ${red(reviewed(result.error ?? "failed"))}`
  )
  return [
    `${bold(`Skill ${record.skill_name} ${reviewed(record.version)}`)}  ${dim(`approval ${record.id} (${record.status})`)}`,
    `  ${reviewed(record.metadata.description)}`,
    `  code:  ${copy.codePath}  ${dim(`(the tested copy of ${reviewed(record.code_path)}; this is what is installed)`)}`,
    `  tests: ${copy.testPath}  ${dim(`(the tested copy of ${reviewed(record.test_path)})`)}`,
    `  test results: ${report.failed === 0 ? green(`${report.passed}/${report.total} passed`) : red(`${report.failed}/${report.total} failed`)}`,
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

/** Reads one key from a raw-mode terminal. */
const readKey: Effect.Effect<string> = Effect.async<string>((resume) => {
  const stdin = process.stdin
  const wasRaw = stdin.isRaw
  stdin.setRawMode(true)
  stdin.resume()
  const onData = (data: Buffer) => {
    stdin.off("data", onData)
    stdin.setRawMode(wasRaw)
    stdin.pause()
    resume(Effect.succeed(data.toString("utf8")))
  }
  stdin.on("data", onData)
  return Effect.sync(() => {
    stdin.off("data", onData)
    stdin.setRawMode(wasRaw)
    stdin.pause()
  })
})

/** Reads a line (the reason for a rejection). */
const readLine = (question: string): Effect.Effect<string> =>
  Effect.async<string>((resume) => {
    process.stdout.write(question)
    process.stdin.setEncoding("utf8")
    process.stdin.resume()
    const onData = (data: string) => {
      process.stdin.off("data", onData)
      process.stdin.pause()
      resume(Effect.succeed(data.split("\n")[0]?.trim() ?? ""))
    }
    process.stdin.on("data", onData)
    return Effect.sync(() => process.stdin.off("data", onData))
  })

export type Decision = { readonly _tag: "Approved" } | { readonly _tag: "Rejected"; readonly reason: string } | {
  readonly _tag: "Undecided"
}

/**
 * The interactive review of one pending approval. Rerun and Edit refresh the record's test
 * results (an edited draft must pass its tests again before it can be approved).
 */
export const reviewInteractively = (approvalId: string) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const runner = yield* SkillRunner
    const rerun = (record: ApprovalRecord) =>
      Effect.gen(function*() {
        yield* Console.log(dim(`running the tests of ${record.skill_name}…`))
        const run = yield* runner.runTests(record.skill_name, { draft: true })
        return yield* approvals.updateTests(record.id, { total: run.total, passed: run.passed, failed: run.failed, results: run.results }, run.tested)
      })
    const summary = (record: ApprovalRecord) =>
      Effect.flatMap(approvals.tested(record), (copy) => Console.log(describeApproval(record, copy, approvals.promotionCommands(record))))
    let record = yield* approvals.get(approvalId)
    yield* summary(record)
    for (;;) {
      yield* Console.log(`\n${bold("[V]")}iew code  ${bold("[R]")}erun tests  ${bold("[E]")}dit  ${bold("[Y]")}es (promote)  ${bold("[N]")}o (reject)  ${dim("[Q]uit")}`)
      const key = (yield* readKey).toLowerCase()
      if (key === "v") {
        yield* Console.log(viewTested(yield* approvals.tested(record)))
      } else if (key === "r") {
        record = yield* rerun(record)
        yield* summary(record)
      } else if (key === "e") {
        const editor = process.env["VISUAL"] ?? process.env["EDITOR"] ?? "vi"
        spawnSync(editor, [record.code_path], { stdio: "inherit" })
        record = yield* rerun(record)
        yield* summary(record)
      } else if (key === "y") {
        yield* approvals.resolve(record.id, true, "approved interactively")
        yield* approvals.promote(record.id)
        yield* Console.log(green(`promoted ${record.skill_name}`))
        return { _tag: "Approved" } as Decision
      } else if (key === "n") {
        const reason = yield* readLine("Reason for rejecting (shown in the task's failure): ")
        yield* approvals.resolve(record.id, false, reason === "" ? "rejected interactively" : reason)
        return { _tag: "Rejected", reason } as Decision
      } else if (key === "q" || key === "\u0003" || key === "\u0004") {
        return { _tag: "Undecided" } as Decision
      }
    }
  })
