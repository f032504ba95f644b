/**
 * The `luallm-agent` command tree. Each subcommand lives in `src/shell/commands/<name>.ts`.
 */
import { Command } from "@effect/cli"
import { Effect, Either, Logger, Option } from "effect"
import { findUnknownOption, hoistRootOptions, takeLogLevel } from "./argv.ts"
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
    "An auditable, resumable agent for local LLMs: plans a task graph, drafts missing skills as sandboxed code, and asks a human before trusting them."
  ),
  Command.withSubcommands(subcommands)
)

export const programName = "luallm-agent"

const runParsed = Command.run(cli, { name: programName, version: "0.1.0" })

/** The first option in `args` (the words after `luallm-agent`) that its command does not have. */
export const unknownOption = (args: ReadonlyArray<string>) =>
  findUnknownOption(programName, root.descriptor, subcommands.map((command) => command.descriptor), args)

/**
 * Runs the command line `argv` (with node and the script first, as `process.argv` has them).
 * An option the command does not have is refused first, by name, with the closest one it has;
 * the global options (`--config`, `--llm`, `--store`, `--on`) and `--log-level` apply to the
 * whole command wherever they stand.
 */
export const runCli = (argv: ReadonlyArray<string>) => {
  const [node = "node", script = programName, ...typed] = argv
  const args = hoistRootOptions(root.descriptor, typed)
  const unknown = unknownOption(args)
  if (Option.isSome(unknown)) return Effect.fail(new ExitWith({ code: ExitCodes.usage, error: unknown.value }))
  return Either.match(takeLogLevel(args), {
    onLeft: (error) => Effect.fail(new ExitWith({ code: ExitCodes.usage, error })),
    onRight: ({ level, rest }) => {
      const run = runParsed([node, script, ...rest])
      return Option.match(level, { onNone: () => run, onSome: (minimum) => Logger.withMinimumLogLevel(run, minimum) })
    }
  })
}
