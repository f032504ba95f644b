/**
 * The `luallm-agent` command tree. Each subcommand lives in `src/shell/commands/<name>.ts`.
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import { Console, Effect, Either, Logger, type LogLevel, Option } from "effect"
import {
  type CommandNode,
  commandTree,
  helpAskedFor,
  hoistRootOptions,
  type LogLevelInvalid,
  readArgs,
  takeLogLevel,
  type UnknownCommand,
  type UnknownOption
} from "./argv.ts"
import { approvalsCommand } from "./commands/approvals.ts"
import { configCommand } from "./commands/config.ts"
import { demoCommand } from "./commands/demo.ts"
import { doctorCommand } from "./commands/doctor.ts"
import { logCommand } from "./commands/log.ts"
import { generateCommand, generateWithContextCommand, quickPromptCommand } from "./commands/prompt.ts"
import { skillsCommand } from "./commands/skills.ts"
import { statsCommand } from "./commands/stats.ts"
import { resetCommand, resumeCommand, runCommand, statusCommand, tasksCommand } from "./commands/task.ts"
import { workerCommand } from "./commands/worker.ts"
import { ExitCodes, ExitWith } from "./exit.ts"
import { helpFor } from "./help.ts"
import { root } from "./root.ts"

const subcommands = [
  runCommand,
  resumeCommand,
  statusCommand,
  tasksCommand,
  resetCommand,
  workerCommand,
  approvalsCommand,
  skillsCommand,
  demoCommand,
  doctorCommand,
  configCommand,
  logCommand,
  statsCommand,
  quickPromptCommand,
  generateCommand,
  generateWithContextCommand
] as const

export const cli = root.pipe(
  Command.withDescription(
    "An auditable, resumable agent for local LLMs\nIt plans a task graph, drafts missing skills as sandboxed code, and asks a human before trusting them."
  ),
  Command.withSubcommands(subcommands)
)

export const programName = "luallm-agent"
export const version = "0.1.0"

const runParsed = Command.run(cli, { name: programName, version })

/** The command tree, the root first (argv.ts reads the command line against it, help.ts shows it). */
export const tree = commandTree(cli.descriptor, subcommands.map((command) => command.descriptor))

/** The first option in `args` (the words after `luallm-agent`) that its command does not have. */
export const unknownOption = (args: ReadonlyArray<string>) => readArgs(tree, args).unknown

/** What the words after the program name ask for: a command's help, or a command to parse (without `--log-level`). */
export type CommandLine =
  | { readonly _tag: "Help"; readonly path: ReadonlyArray<CommandNode> }
  | {
    readonly _tag: "Parse"
    readonly args: ReadonlyArray<string>
    readonly level: Option.Option<LogLevel.LogLevel>
    /** The command named, as typed: `luallm-agent approvals show`. */
    readonly command: string
  }

/**
 * Reads the words after the program name as `luallm-agent` does before @effect/cli parses them:
 * the global options moved before the command, an option the command does not have refused by
 * name (with the closest one it has), a request for help answered from the command tree, and
 * `--log-level` taken out to apply to the whole command wherever it stands.
 */
export const readCommandLine = (typed: ReadonlyArray<string>): Either.Either<CommandLine, UnknownOption | UnknownCommand | LogLevelInvalid> => {
  const args = hoistRootOptions(root.descriptor, typed)
  const reading = readArgs(tree, args)
  if (Option.isSome(reading.unknown)) return Either.left(reading.unknown.value)
  const help = helpAskedFor(reading)
  if (Option.isSome(help)) return Either.map(help.value, (path): CommandLine => ({ _tag: "Help", path }))
  const command = reading.path.map((node) => node.name).join(" ")
  return Either.map(takeLogLevel(args), ({ level, rest }): CommandLine => ({ _tag: "Parse", args: rest, level, command }))
}

/**
 * Runs the command line `argv` (with node and the script first, as `process.argv` has them).
 * After a usage problem @effect/cli has printed (a missing argument, a value of the wrong kind),
 * the help to read is named.
 */
export const runCli = (argv: ReadonlyArray<string>) => {
  const [node = "node", script = programName, ...typed] = argv
  return Either.match(readCommandLine(typed), {
    onLeft: (error) => Effect.fail(new ExitWith({ code: ExitCodes.usage, error })),
    onRight: (line) => {
      if (line._tag === "Help") return Console.log(HelpDoc.toAnsiText(helpFor(programName, version, line.path)))
      const run = runParsed([node, script, ...line.args]).pipe(
        Effect.tapError((error) => (ValidationError.isValidationError(error) ? Console.error(`\`${line.command} --help\` shows how to use it.`) : Effect.void))
      )
      return Option.match(line.level, { onNone: () => run, onSome: (minimum) => Logger.withMinimumLogLevel(run, minimum) })
    }
  })
}
