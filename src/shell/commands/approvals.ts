/**
 * `approvals list|show|retest|approve|reject`: the scriptable side of skill approval. `approve`
 * records the human's yes and promotes the draft into skills.allowed_dir; `reject` records
 * the no with a reason. Every record names its task: `luallm-agent resume --task ID` then
 * continues (or fails) that task and no other.
 */
import { Args, Command as Cli, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { findHiddenCharacters } from "../../core/reviewText.ts"
import { resumeCommand } from "../../core/task.ts"
import { Approvals } from "../../layers/Approvals.ts"
import { allPassed } from "../../core/testHarness.ts"
import { State } from "../../layers/State.ts"
import { describeApproval, retest, viewTested } from "../approvalPrompt.ts"
import { hiddenCharacterWarnings, reviewed } from "../codeReview.ts"
import { ExitCodes, ExitWith } from "../exit.ts"
import { dim, green, printJson } from "../ui.ts"
import { onCluster, provideAgent } from "../runtime.ts"
import { decideOnCluster } from "./onCluster.ts"

/**
 * What continues the task an approval belongs to (only that task); for a task that is no longer
 * saved (reset before approvals were settled with it), that there is nothing to continue.
 */
const nextFor = (taskId: string | null, then: string) =>
  Effect.gen(function*() {
    // A record filed before approvals named their task: resume's default, the most recent unfinished.
    if (taskId === null) return `next: luallm-agent resume — ${then}`
    // A task that is saved but cannot be read is still there: resume says what is wrong with it.
    const gone = yield* (yield* State).load(taskId).pipe(Effect.map(Option.isNone), Effect.orElseSucceed(() => false))
    return gone
      ? `its task ${taskId.slice(0, 8)} is no longer saved, so there is nothing to continue`
      : `next: ${resumeCommand({ id: taskId })} — ${then}`
  })

const json = Options.boolean("json").pipe(Options.withDescription("Print it as JSON, for scripts"))
const id = Args.text({ name: "id" }).pipe(Args.withDescription("The approval id (the first 8 characters are enough)"))

const listCommand = Cli.make("list", { json }, ({ json: asJson }) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const pending = yield* approvals.listPending
    if (asJson) return yield* printJson(pending)
    if (pending.length === 0) return yield* Console.log("no pending approvals")
    for (const record of pending) {
      const tests = `${record.test_report.passed}/${record.test_report.total} tests pass`
      const copy = yield* approvals.tested(record)
      const hidden = [...hiddenCharacterWarnings("code", copy.code, "    "), ...hiddenCharacterWarnings("tests", copy.tests, "    ")]
      const task = record.task_id === null ? "" : `  task ${record.task_id.slice(0, 8)}`
      yield* Console.log(
        [`${record.id.slice(0, 8)}  ${record.skill_name} ${reviewed(record.version)}  ${tests}${task}  ${dim(record.created_at)}`, ...hidden].join("\n")
      )
    }
  }).pipe(provideAgent)).pipe(Cli.withDescription("List the drafts waiting for a human\nEach with its task, its test results, and a warning for characters a reader cannot see."))

const showCommand = Cli.make("show", { id, json }, ({ id, json: asJson }) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const record = yield* approvals.get(id)
    const copy = yield* approvals.tested(record)
    if (asJson) {
      return yield* printJson({
        ...record,
        tested_code_path: copy.codePath,
        tested_test_path: copy.testPath,
        hidden_characters: { code: findHiddenCharacters(copy.code), tests: findHiddenCharacters(copy.tests) },
        promotion_commands: approvals.promotionCommands(record)
      })
    }
    yield* Console.log(describeApproval(record, copy, approvals.promotionCommands(record)))
    yield* Console.log(`\n${viewTested(copy)}`)
  }).pipe(provideAgent)).pipe(
    Cli.withDescription("Show a draft as it will be installed, code and tests included\nIts summary, test results, declared paths, the tested code and tests with hidden characters marked, and the commands that promote it by hand.")
  )

const retestCommand = Cli.make("retest", { id, json }, ({ id, json: asJson }) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const record = yield* retest(id)
    if (asJson) yield* printJson(record)
    else yield* Console.log(describeApproval(record, yield* approvals.tested(record), approvals.promotionCommands(record)))
    if (!allPassed(record.test_report)) return yield* new ExitWith({ code: ExitCodes.failure })
  }).pipe(provideAgent)).pipe(
    Cli.withDescription(
      "Rerun a pending draft's tests in the sandbox and keep the new results\nAfter you edited the draft, or to see its tests again: the approval keeps the new results and tested copy. Exit 1 when a test fails."
    )
  )

const approveCommand = Cli.make("approve", { id }, ({ id }) =>
  Effect.if(onCluster("approvals approve"), {
    onTrue: () => decideOnCluster(id, true, "approved with `approvals approve`"),
    onFalse: () =>
      Effect.gen(function*() {
        const approvals = yield* Approvals
        const resolved = yield* approvals.resolve(id, true, "approved with `approvals approve`")
        const promoted = yield* approvals.promote(resolved.id)
        yield* Console.log(green(`approved and promoted ${promoted.skill_name} → ${promoted.promoted_to ?? "?"}`))
        yield* Console.log(yield* nextFor(promoted.task_id, "the task goes on with the skill"))
      }).pipe(provideAgent)
  })).pipe(Cli.withDescription("Approve a draft (you read it) and promote it into skills.allowed_dir"))

const rejectCommand = Cli.make(
  "reject",
  { id, reason: Options.text("reason").pipe(Options.withPseudoName("TEXT"), Options.withDescription("Why, in a few words; the task's failure message quotes it (default: none given)"), Options.optional) },
  ({ id, reason }) =>
    Effect.if(onCluster("approvals reject"), {
      onTrue: () => decideOnCluster(id, false, Option.getOrElse(reason, () => "rejected with `approvals reject`")),
      onFalse: () =>
        Effect.gen(function*() {
          const approvals = yield* Approvals
          const resolved = yield* approvals.resolve(id, false, Option.getOrElse(reason, () => "rejected with `approvals reject`"))
          yield* Console.log(`rejected ${resolved.skill_name}`)
          yield* Console.log(yield* nextFor(resolved.task_id, "the task ends, failed with your reason"))
        }).pipe(provideAgent)
    })
).pipe(Cli.withDescription("Reject a draft, with a reason"))

export const approvalsCommand = Cli.make("approvals").pipe(
  Cli.withDescription("Review drafted skills: list, show, retest, approve, reject"),
  Cli.withSubcommands([listCommand, showCommand, retestCommand, approveCommand, rejectCommand])
)
