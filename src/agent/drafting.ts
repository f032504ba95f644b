/**
 * The skill sub-loop: draft a missing skill and its tests with the code model, check the
 * draft's header before anything runs, run the tests in the sandbox (draft mode: writes go
 * to a scratch dir), rework with the failing output (the code, and the tests too when they are
 * what is wrong), then file the approval and ask a human (through the `Approver`). Drafts live in
 * `skills.agent_dir`; nothing here writes to `skills.allowed_dir`
 * except `Approvals.promote`, after a human said yes.
 */
import { FileSystem, Path } from "@effect/platform"
import { Data, Effect, Either, Option, Schema } from "effect"
import { answerJsonSchema, type JsonSchema } from "../core/jsonSchema.ts"
import { parseDraftAnswer } from "../core/llmOutput.ts"
import {
  agentSystemPrompt,
  type PromptShrink,
  type SkillDraftContext,
  skillCodeUserPrompt,
  skillReworkUserPrompt,
  skillReworkWithTestsUserPrompt,
  skillTestUserPrompt
} from "../core/prompts.ts"
import { describeHiddenCharacters, findHiddenCharacters } from "../core/reviewText.ts"
import { isSkillName, parseMetadata } from "../core/skillMeta.ts"
import type { SkillDraft, Task } from "../core/task.ts"
import { Event } from "../core/taskMachine.ts"
import { allPassed, type TestReport, testsAtFault } from "../core/testHarness.ts"
import { type ApprovalRecord, Approvals } from "../layers/Approvals.ts"
import { Approver, Question } from "../layers/Approver.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import { Llm } from "../layers/Llm.ts"
import { SkillRunner } from "../layers/SkillRunner.ts"
import { MetadataInvalid, Skills } from "../layers/Skills.ts"
import { askModel, type CallPurpose } from "./llmCall.ts"
import { librarySkills } from "./planning.ts"
import type { ProgressListener } from "./progress.ts"

const draftContext = (task: Task, draft: SkillDraft, allowedPaths: ReadonlyArray<string>): SkillDraftContext => ({
  name: draft.skill.name,
  purpose: draft.skill.purpose,
  exampleArgs: draft.skill.example_args,
  request: task.prompt,
  allowedPaths
})

/** Where a draft's files go: inside skills.agent_dir, named by an identifier (never a path). */
const draftPaths = (name: string) =>
  Effect.gen(function*() {
    const { config } = yield* AppConfig
    const path = yield* Path.Path
    if (!isSkillName(name)) return yield* Effect.dieMessage(`draft of a skill whose name is not an identifier: ${JSON.stringify(name)}`)
    return {
      dir: config.skills.agent_dir,
      code: path.join(config.skills.agent_dir, `${name}.js`),
      test: path.join(config.skills.agent_dir, `${name}.test.js`)
    }
  })

export class DraftWriteError extends Data.TaggedError("DraftWriteError")<{ readonly path: string; readonly reason: string }> {
  override get message() {
    return `Could not write the drafted skill file ${this.path}: ${this.reason}. The task is saved where it was; make skills.agent_dir writable (or point it elsewhere) and run \`luallm-agent resume\`.`
  }
}

const writeFile = (file: string, text: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(path.dirname(file), { recursive: true })
    yield* fs.writeFileString(file, text)
  }).pipe(Effect.mapError((error) => new DraftWriteError({ path: file, reason: error.message })))

/**
 * Checks a freshly written draft before it runs: its header parses, names this skill, and
 * passes `validate` (declared paths inside allowed_paths, public functions exist).
 * `undefined` when it is fine, else the feedback for the model.
 */
const checkDraft = (name: string, file: string) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const checked = yield* skills.validate(file).pipe(
      Effect.map((meta) => meta.name === name ? undefined : `The header names the skill "${meta.name}", but it must be "${name}".`),
      Effect.catchTag("SkillInvalid", (error) => Effect.succeed(`The skill file is not usable:\n- ${error.problems.join("\n- ")}`))
    )
    return checked
  })

/**
 * A human must be able to read exactly what runs, so a draft may not hold characters a reader
 * cannot see (line separators, bidi controls, zero-width and other invisible characters):
 * the model is told which and where, and writes it again. `undefined` when there are none.
 */
const hiddenCharacterFeedback = (what: "code" | "tests", text: string): string | undefined => {
  const found = describeHiddenCharacters(findHiddenCharacters(text))
  if (found.length === 0) return undefined
  return `The ${what === "code" ? "code holds" : "tests hold"} characters a reviewer cannot see (no draft may hold any): ${found.join("; ")}. ` +
    "Write the whole file again with visible characters only (inside a string, write such a character as an escape, e.g. \\u00a0)."
}


/** The shapes drafting answers are constrained to, where the server enforces a schema. */
export const draftSchema = answerJsonSchema(Schema.Struct({ code: Schema.String, tests: Schema.String }))
export const codeSchema = answerJsonSchema(Schema.Struct({ code: Schema.String }))
export const testsSchema = answerJsonSchema(Schema.Struct({ tests: Schema.String }))

/**
 * `DraftSkill` and `ReworkSkill`: write the code (and, the first time or when they were the
 * problem, the tests). A first draft asks for both in one answer; a model that sent only the
 * code is asked for the tests.
 */
export const writeDraft = (task: Task, draft: SkillDraft, rework: boolean, progress: ProgressListener) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const app = yield* AppConfig
    const fs = yield* FileSystem.FileSystem
    const files = yield* draftPaths(draft.skill.name)
    const context = draftContext(task, draft, app.config.allowed_paths)
    const model = yield* llm.resolveModel("code")
    const skills = yield* librarySkills
    const ask = (purpose: CallPurpose, user: (shrink: PromptShrink) => string, schema: JsonSchema, name: string) =>
      askModel({
        purpose,
        model,
        taskId: task.id,
        prompt: (shrink) => ({ system: agentSystemPrompt({ skills, catalogue: shrink.catalogue }), user: user(shrink) }),
        temperature: 0.2,
        output: { name, schema }
      }, progress)
    const previousTests = rework ? yield* fs.readFileString(files.test).pipe(Effect.orElseSucceed(() => "")) : ""
    const previousCode = rework ? yield* fs.readFileString(files.code).pipe(Effect.orElseSucceed(() => "")) : ""
    const failure = draft.feedback ?? "the tests failed"
    // A rework keeps the tests, so passing means the code changed to meet them; unless the tests
    // are what is wrong: then it asks for the code and new tests, which replace the old ones.
    // (A draft whose code was refused before its tests were written gets them after the code.)
    const noTests = previousTests.trim() === ""
    const testsProblem = !rework || noTests
      ? undefined
      : draft.test_report === null
      ? `${draft.skill.name}.test.js could not run.`
      : testsAtFault(draft.skill.name, draft.test_report)
    const withTests = !rework || noTests || testsProblem !== undefined
    const answer = !rework
      ? yield* ask("skill.draft", () => skillCodeUserPrompt(context), draftSchema, "skill_draft")
      : testsProblem !== undefined
      ? yield* ask(
        "skill.rework",
        (shrink) => skillReworkWithTestsUserPrompt(context, previousCode, previousTests, testsProblem, failure, shrink),
        draftSchema,
        "skill_draft"
      )
      : yield* ask("skill.rework", (shrink) => skillReworkUserPrompt(context, previousCode, previousTests, failure, shrink), codeSchema, "skill_code")
    const drafted = parseDraftAnswer(answer.content, withTests ? "both" : "code")
    if (drafted.code.trim() === "") return Event.DraftRejected({ feedback: "The answer held no code. Answer with the whole skill file, header first." })
    const hiddenInCode = hiddenCharacterFeedback("code", drafted.code)
    if (hiddenInCode !== undefined) return Event.DraftRejected({ feedback: hiddenInCode })
    yield* writeFile(files.code, drafted.code)
    const problem = yield* checkDraft(draft.skill.name, files.code)
    if (problem !== undefined) return Event.DraftRejected({ feedback: problem })
    // The tests are written with the first version, and again only when they were the problem;
    // a model that sent only the code is asked for them.
    if (withTests) {
      const tests = drafted.tests.trim() !== ""
        ? drafted.tests
        : parseDraftAnswer((yield* ask("skill.test", () => skillTestUserPrompt(context, drafted.code), testsSchema, "skill_tests")).content, "tests").tests
      if (tests.trim() === "") return Event.DraftRejected({ feedback: "The tests answer held no code." })
      const hiddenInTests = hiddenCharacterFeedback("tests", tests)
      if (hiddenInTests !== undefined) return Event.DraftRejected({ feedback: hiddenInTests })
      yield* writeFile(files.test, tests)
    }
    return Event.Drafted({ codePath: files.code, testPath: files.test })
  })

/** What the model is shown of a failing test run. */
export const describeFailures = (report: TestReport, output: string): string => {
  const failures = report.results.filter((result) => result.status !== "pass")
  const lines = failures.map((result) => `- ${result.name}: ${result.status === "skip" ? "skipped, " : ""}${result.error ?? "failed"}`)
  const printed = output.trim() === "" ? "" : `\nWhat the tests printed:\n${output.slice(0, 4000)}`
  const skipped = (report.skipped ?? 0) === 0 ? "" : ` (${report.skipped} skipped: a skipped test passes nothing)`
  return `${report.failed} of ${report.total} tests failed${skipped}:\n${lines.join("\n")}${printed}`
}

/**
 * `TestSkill`: the draft's tests, in draft mode. When they pass, the code and tests exactly as
 * this run read them are kept by `Approvals`: that copy, not the draft file, is what a human
 * reviews and what is promoted.
 */
export const testDraft = (draft: SkillDraft) =>
  Effect.gen(function*() {
    const runner = yield* SkillRunner
    const approvals = yield* Approvals
    // A test file that cannot run at all is feedback for the model, like failing tests.
    const couldNotRun = (error: { readonly message: string }) => Effect.succeed(Either.left(error.message))
    const run = yield* runner.runTests(draft.skill.name, { draft: true }).pipe(
      Effect.map((result) => Either.right(result)),
      Effect.catchTags({
        TestFileFailed: couldNotRun,
        TestFileMissing: couldNotRun,
        MetadataInvalid: couldNotRun,
        DependencyMissing: couldNotRun,
        DependencyCycle: couldNotRun
      })
    )
    if (Either.isLeft(run)) return Event.TestsFailed({ report: null, feedback: run.left })
    const { failed, passed, results, skipped, total } = run.right
    const report = { total, passed, failed, ...(skipped === undefined ? {} : { skipped }), results }
    if (!allPassed(report)) {
      return Event.TestsFailed({
        report,
        feedback: total === 0 ? "The test file registers no tests. Write tests with test(name, fn)." : describeFailures(run.right, run.right.output)
      })
    }
    return Event.TestsPassed({ report, tested: yield* approvals.keepTested(run.right.tested) })
  })

/** `RequestApproval`: file the record; `CheckApproval` then asks a human about it. */
export const requestApproval = (task: Task, draft: SkillDraft) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const files = yield* draftPaths(draft.skill.name)
    // commandFor asks for a test run first when there is no tested copy.
    if (draft.tested === null) return yield* Effect.dieMessage(`approval requested for ${draft.skill.name} without a tested copy`)
    const tested = yield* approvals.tested(draft.tested)
    // The header a reviewer is shown is the tested copy's, not the draft file's as it is now.
    const metadata = yield* Either.mapLeft(parseMetadata(tested.code, files.code), (problem) => new MetadataInvalid(problem))
    const report = draft.test_report ?? { total: 0, passed: 0, failed: 0, results: [] }
    const record = yield* approvals.create({
      skillName: draft.skill.name,
      metadata,
      codePath: files.code,
      testPath: files.test,
      testReport: report,
      tested: draft.tested,
      taskId: task.id
    })
    return Event.ApprovalRequested({ approvalId: record.id })
  })

/**
 * What a decided record means for its task: approved → promote (if not yet) → `Approved`;
 * rejected → `Rejected`; still pending, but a human copied the exact approved file into
 * allowed_dir by hand → recorded as approved → `Approved`; `None` while nobody has decided.
 */
const decided = (record: ApprovalRecord) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const audit = yield* Audit
    if (record.status === "rejected") return Option.some(Event.Rejected({ reason: record.reason ?? "no reason given" }))
    if (record.status === "approved") {
      if (record.promoted_to === null) yield* approvals.promote(record.id)
      return Option.some(Event.Approved())
    }
    if (yield* approvals.checkPromotion(record)) {
      yield* approvals.resolve(record.id, true, "promoted by hand with the printed commands")
      yield* audit.log("approval.manual_promotion", { id: record.id, skill: record.skill_name })
      return Option.some(Event.Approved())
    }
    return Option.none<Event>()
  })

/**
 * `CheckApproval`: a record someone decided already (`approvals approve|reject`, a hand
 * promotion) is taken as decided; otherwise the `Approver` is asked with the tested copy (what
 * promotion installs) and its answer is recorded: yes → resolved and promoted → `Approved`; no →
 * `Rejected`; not now → `ApprovalPending`, which pauses the task.
 */
export const checkApproval = (task: Task, approvalId: string) =>
  Effect.gen(function*() {
    const approvals = yield* Approvals
    const approver = yield* Approver
    const record = yield* approvals.get(approvalId)
    const before = yield* decided(record)
    if (Option.isSome(before)) return before.value
    const copy = yield* approvals.tested(record)
    const answer = yield* approver.ask(Question.ApproveSkill({ taskId: task.id, approval: record, code: copy.code, tests: copy.tests }))
    if (answer._tag === "Later") return Event.ApprovalPending()
    const resolved = answer._tag === "Yes"
      ? approvals.resolve(record.id, true, `approved by ${answer.by}`)
      : approvals.resolve(record.id, false, answer.reason.trim() === "" ? `rejected by ${answer.by}` : answer.reason)
    // Someone else decided while this human read it (e.g. `approvals approve` from another shell): theirs counts.
    const settled = yield* resolved.pipe(Effect.catchTag("ApprovalAlreadyResolved", () => approvals.get(record.id)))
    return Option.getOrElse(yield* decided(settled), () => Event.ApprovalPending())
  })
