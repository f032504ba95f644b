/**
 * `skills list|show|run|test`: the skill library from the command line. Approved skills
 * (skills.allowed_dir) and shipped ones (skills.builtin_dir) run trusted; `--draft` picks the
 * agent's draft of that name (skills.agent_dir), which runs in draft mode. Everything a skill
 * file or a skill run produces is untrusted text and is printed sanitised.
 */
import { Args, Command as Cli, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Console, Data, Effect, Either, Schema } from "effect"
import { fromJsonText } from "../../core/jsonText.ts"
import { formatParseError } from "../../core/schemaIssues.ts"
import { findHiddenCharacters } from "../../core/reviewText.ts"
import { SkillArgs, type SkillMetadata } from "../../core/skillMeta.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import type { TestResult } from "../../core/testHarness.ts"
import { AppConfig } from "../../layers/Config.ts"
import { SkillRunner } from "../../layers/SkillRunner.ts"
import { Skills, SkillUnreadable } from "../../layers/Skills.ts"
import { codeView, hiddenCharacterWarnings, reviewed } from "../codeReview.ts"
import { ExitCodes, ExitWith } from "../exit.ts"
import { provideSkills } from "../runtime.ts"
import { bold, dim, fail, ok, printJson, printUntrusted, skipped, testCounts } from "../ui.ts"

const json = Options.boolean("json").pipe(Options.withDescription("Print it as JSON, for scripts"))
const draft = Options.boolean("draft").pipe(
  Options.withDescription("Use the agent's draft of this name (skills.agent_dir); it runs in draft mode, its writes going to a scratch directory")
)
const allowExec = Options.boolean("allow-exec").pipe(
  Options.withDescription("Grant the exec capability to a skill that declares it (you are the approval; approval_tiers.skill_exec \"auto\" grants it always)")
)
const name = Args.text({ name: "name" }).pipe(Args.withDescription("The skill's name (an identifier, not a path)"))

const text = (value: string): string => sanitizeForTerminal(value)

/** Where skills come from, in lookup order. */
const sources = Effect.map(AppConfig, ({ config }) => [
  { origin: "approved", dir: config.skills.allowed_dir },
  { origin: "shipped", dir: config.skills.builtin_dir },
  { origin: "draft", dir: config.skills.agent_dir }
] as const)

const listCommand = Cli.make("list", { json }, ({ json: asJson }) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const listed = yield* Effect.forEach(yield* sources, (source) =>
      Effect.map(skills.list(source.dir), (entries) => ({ ...source, entries })))
    if (asJson) {
      return yield* printJson({
        skills: listed.flatMap((s) => s.entries.flatMap((e) => (e._tag === "Valid" ? [{ origin: s.origin, file: e.file, ...e.meta }] : []))),
        invalid: listed.flatMap((s) => s.entries.flatMap((e) => (e._tag === "Invalid" ? [{ origin: s.origin, file: e.file, error: e.error.message }] : [])))
      })
    }
    for (const { dir, entries, origin } of listed) {
      yield* Console.log(`${bold(origin)} ${dim(dir)}`)
      if (entries.length === 0) yield* Console.log(dim("  (none)"))
      for (const entry of entries) {
        yield* Console.log(
          entry._tag === "Valid"
            ? `  ${entry.meta.name} ${reviewed(entry.meta.version)}  ${dim(reviewed(entry.meta.description))}`
            : `  ${fail(text(entry.file))}\n      ${text(entry.error.message)}`
        )
      }
    }
  }).pipe(provideSkills)).pipe(Cli.withDescription("List the approved, shipped and drafted skills\nA skill file that cannot be read is listed with its error."))

/** The header's fields; they come from the file under review, so hidden characters are shown. */
const describeSkill = (meta: SkillMetadata, file: string, tests: string | null): ReadonlyArray<string> => {
  const list = (items: ReadonlyArray<string>) => (items.length === 0 ? dim("none") : items.map(reviewed).join(", "))
  return [
    `${bold(meta.name)} ${reviewed(meta.version)}  ${dim(reviewed(file))}`,
    ...(meta.description === "" ? [] : [`  ${reviewed(meta.description)}`]),
    `  functions:    ${list(meta.public_functions)}`,
    ...(meta.args === undefined ? [] : [`  run's args:   ${Object.entries(meta.args).map(([key, about]) => `${reviewed(key)} (${reviewed(about)})`).join(", ")}`]),
    `  paths:        ${list(meta.paths)}`,
    `  dependencies: ${list(meta.dependencies)}`,
    `  capabilities: ${list(meta.capabilities)}`,
    `  urls:         ${list(meta.urls)}`,
    `  tests:        ${tests === null ? dim("none") : reviewed(tests)}`
  ]
}

const showCommand = Cli.make("show", { name, draft, json }, ({ draft: fromDrafts, json: asJson, name }) =>
  Effect.gen(function*() {
    const skills = yield* Skills
    const fs = yield* FileSystem.FileSystem
    const skill = yield* skills.load(name, fromDrafts ? skills.draftDirs : skills.trustedDirs)
    const testFile = skill.file.replace(/\.js$/, ".test.js")
    const testCode = yield* fs.readFileString(testFile).pipe(
      Effect.map((code): string | null => code),
      Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.succeed(null)),
      Effect.mapError((error) => new SkillUnreadable({ file: testFile, reason: error.message }))
    )
    const tests = testCode === null ? null : testFile
    if (asJson) {
      const hidden_characters = { code: findHiddenCharacters(skill.code), tests: findHiddenCharacters(testCode ?? "") }
      return yield* printJson({ file: skill.file, tests, ...skill.meta, hidden_characters })
    }
    yield* Console.log(
      [
        ...describeSkill(skill.meta, skill.file, tests),
        ...hiddenCharacterWarnings("code", skill.code),
        ...hiddenCharacterWarnings("tests", testCode ?? ""),
        "",
        codeView("code", skill.file, skill.code),
        ...(testCode === null ? [] : [codeView("tests", testFile, testCode)])
      ].join("\n")
    )
  }).pipe(provideSkills)).pipe(
    Cli.withDescription("Show a skill: its header, code and tests\nThe header (functions, arguments, paths, dependencies, capabilities), then the code and tests with hidden characters marked.")
  )

export class ArgsNotJson extends Data.TaggedError("ArgsNotJson")<{ readonly reason: string }> {
  override get message() {
    return `--args is not a JSON object: ${this.reason}. Pass run's arguments as JSON, e.g. --args '{"path": "~/data/file.csv"}'.`
  }
}

const decodeArgs = Schema.decodeUnknownEither(fromJsonText(SkillArgs))

/** Whether this run may use `exec`: the approval tier, or the human's --allow-exec. */
const execGranted = (flag: boolean) => Effect.map(AppConfig, (app) => flag || app.approvalTier("skill_exec") === "auto")

const runCommand = Cli.make(
  "run",
  {
    name,
    args: Options.text("args").pipe(
      Options.withPseudoName("JSON"),
      Options.withDescription("The arguments of the skill's run(args), as a JSON object with the names its header's args list (default: {}, none)"),
      Options.withDefault("{}")
    ),
    json,
    draft,
    allowExec
  },
  ({ allowExec: allow, args, draft: fromDrafts, json: asJson, name }) =>
    Effect.gen(function*() {
      const decoded = decodeArgs(args)
      if (Either.isLeft(decoded)) {
        return yield* new ExitWith({ code: ExitCodes.usage, error: new ArgsNotJson({ reason: formatParseError(decoded.left) }) })
      }
      const runner = yield* SkillRunner
      const outcome = yield* runner.execute(name, decoded.right, { draft: fromDrafts, grantExec: yield* execGranted(allow) })
      if (asJson) return yield* printJson(outcome)
      if (outcome.output !== "") yield* printUntrusted(outcome.output.replace(/\n$/, ""))
      yield* printUntrusted(JSON.stringify(outcome.result, null, 2))
      yield* Console.error(dim(`${name} ran in ${outcome.duration_ms} ms${fromDrafts ? " (draft: its writes went to a scratch directory)" : ""}`))
    }).pipe(provideSkills)
).pipe(Cli.withDescription("Run a skill's run(args) in the sandbox and print its result"))

const printResult = (result: TestResult) => {
  const took = dim(`(${result.duration_ms} ms)`)
  switch (result.status) {
    case "pass":
      return Console.log(ok(`${text(result.name)} ${took}`))
    case "skip":
      return Console.log(`${skipped(`${text(result.name)}`)}\n    skipped: ${text(result.error ?? "not run")}`)
    case "fail":
      return Console.log(`${fail(`${text(result.name)} ${took}`)}\n    ${text(result.error ?? "failed")}`)
  }
}

/** A test file that registers no tests shows nothing about the skill: the agent counts it as a failure too. */
export class NoTestsRegistered extends Data.TaggedError("NoTestsRegistered")<{ readonly skill: string; readonly file: string }> {
  override get message() {
    return `The tests of skill ${this.skill} (${this.file}) register no tests, so nothing shows that it works; the agent treats a draft like this as failing. Write tests in ${this.file} with test(name, fn) and assert.*.`
  }
}

const testCommand = Cli.make("test", { name, json, draft, allowExec }, ({ allowExec: allow, draft: fromDrafts, json: asJson, name }) =>
  Effect.gen(function*() {
    const runner = yield* SkillRunner
    const report = yield* runner.runTests(name, { draft: fromDrafts, grantExec: yield* execGranted(allow) })
    if (asJson) yield* printJson(report)
    else {
      yield* Effect.forEach(report.results, printResult, { discard: true })
      if (report.output !== "") yield* Effect.zipRight(Console.log(dim("output:")), printUntrusted(report.output.replace(/\n$/, "")))
      yield* Console.log(testCounts(report))
      if ((report.skipped ?? 0) > 0) {
        yield* Console.log(`${report.skipped} test(s) need the exec capability and were skipped: run them with \`luallm-agent skills test ${name} --allow-exec\`.`)
      }
    }
    if (report.total === 0) return yield* new NoTestsRegistered({ skill: name, file: report.file })
    if (report.failed > 0) return yield* new ExitWith({ code: ExitCodes.failure })
  }).pipe(provideSkills)).pipe(
    Cli.withDescription(
      "Run a skill's tests (<name>.test.js) in the sandbox\nExit 0 when every test that ran passed; 1 when one failed, none is registered, or the tests cannot run. Tests that need exec are skipped unless --allow-exec grants it."
    )
  )

export const skillsCommand = Cli.make("skills").pipe(
  Cli.withDescription("The skill library: list, show, run and test skills in the sandbox"),
  Cli.withSubcommands([listCommand, showCommand, runCommand, testCommand])
)
