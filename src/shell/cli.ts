/**
 * The `luallm-agent` command tree. Each subcommand lives in `src/shell/commands/<name>.ts`.
 */
import { Command } from "@effect/cli"
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
import { root } from "./root.ts"

export const cli = root.pipe(
  Command.withDescription(
    "An auditable, resumable agent for local LLMs: plans a task graph, drafts missing skills as sandboxed code, and asks a human before trusting them."
  ),
  Command.withSubcommands([
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
  ])
)

export const runCli = Command.run(cli, { name: "luallm-agent", version: "0.1.0" })
