/**
 * The task commands: `run "<request>" [--yes]`, `resume`, `status`, `reset`.
 * Exit codes: 0 complete, 1 failed, 3 paused (an approval or a model; `resume` continues).
 */
import { Args, Command as Cli, Options, Prompt } from "@effect/cli"
import { Console, Data, Effect, Option } from "effect"
import { Agent, type AgentOutcome } from "../../Agent.ts"
import type { Task } from "../../core/task.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { Approvals } from "../../layers/Approvals.ts"
import { AppConfig } from "../../layers/Config.ts"
import { State } from "../../layers/State.ts"
import { reviewInteractively } from "../approvalPrompt.ts"
import { ExitCodes, ExitWith } from "../exit.ts"
import { terminalProgress } from "../progress.ts"
import { provideAgent, provideState } from "../runtime.ts"
import { bold, dim, green, isInteractive, printJson, red, yellow } from "../ui.ts"

const json = Options.boolean("json").pipe(Options.withDescription("Print the outcome as JSON"))

const renderValue = (value: unknown): string =>
  sanitizeForTerminal(typeof value === "string" ? value : JSON.stringify(value, null, 2) ?? "null")

/** What a finished or paused task shows, and the exit code that goes with it. */
export const reportOutcome = (outcome: AgentOutcome, asJson: boolean) =>
  Effect.gen(function*() {
    const { paused, task } = outcome
    if (asJson) {
      yield* printJson({ task_id: task.id, state: task.state, paused, result: task.result ?? null, error: task.error, steps: task.steps })
    } else if (task.state === "complete") {
      yield* Console.log(green(`✓ task ${task.id.slice(0, 8)} complete`) + dim(` (${task.steps} steps)`))
      const result = task.result
      const entries = typeof result === "object" && result !== null && !Array.isArray(result) ? Object.entries(result) : []
      for (const [id, value] of entries) yield* Console.log(`${bold(sanitizeForTerminal(id))}: ${renderValue(value)}`)
    } else if (task.state === "failed") {
      yield* Console.error(red(`✗ task ${task.id.slice(0, 8)} failed`) + `\n${sanitizeForTerminal(task.error ?? "no reason recorded")}`)
    } else if (paused !== null) {
      yield* Console.log(`${yellow(`⏸ task ${task.id.slice(0, 8)} paused`)} in ${task.state}: ${sanitizeForTerminal(paused.message)}`)
      yield* Console.log(`next: ${paused.next_command}`)
    }
    const code = task.state === "complete" ? ExitCodes.ok : task.state === "failed" ? ExitCodes.failure : ExitCodes.paused
    if (code !== ExitCodes.ok) return yield* new ExitWith({ code })
  })

export class ConfirmationRequired extends Data.TaggedError("ConfirmationRequired")<{ readonly tier: "prompt" | "human" }> {
  override get message() {
    return this.tier === "human"
      ? "This task needs a human's confirmation (approval_tiers.task_confirmation = \"human\") and there is no terminal to ask on. Run it from a terminal."
      : "This task needs confirmation and there is no terminal to ask on. Pass --yes, or set approval_tiers.task_confirmation to \"auto\"."
  }
}

/** Asks before a task starts, as `approval_tiers.task_confirmation` says; `--yes` skips a `prompt` tier. */
const confirmTask = (prompt: string, yes: boolean) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const tier = app.approvalTier("task_confirmation")
    if (tier === "auto" || (tier === "prompt" && yes)) return true
    if (!isInteractive()) return yield* new ConfirmationRequired({ tier })
    // One key (y or n; Enter is no); Ctrl-C is no as well.
    return yield* Prompt.run(Prompt.confirm({ message: `Run this task? ${sanitizeForTerminal(prompt)}`, initial: false })).pipe(
      Effect.catchTag("QuitException", () => Effect.succeed(false))
    )
  })

export const runCommand = Cli.make(
  "run",
  {
    prompt: Args.text({ name: "request" }).pipe(Args.withDescription("What the agent should do, in plain language")),
    yes: Options.boolean("yes").pipe(Options.withAlias("y"), Options.withDescription("Skip the task confirmation (never a skill promotion)")),
    json
  },
  ({ json: asJson, prompt, yes }) =>
    Effect.gen(function*() {
      if (!(yield* confirmTask(prompt, yes))) return yield* Console.log("not started")
      const agent = yield* Agent
      const outcome = yield* agent.run(prompt, { onProgress: terminalProgress() })
      yield* reportOutcome(outcome, asJson)
    }).pipe(provideAgent)
).pipe(Cli.withDescription("Plan and run a task; drafts missing skills and pauses for their approval"))

/** On a terminal, a pending approval is reviewed right away; elsewhere the task stays paused. */
const reviewPending = (task: Task) =>
  Effect.gen(function*() {
    const approvalId = task.state === "approval" ? task.draft?.approval_id ?? null : null
    if (approvalId === null || !isInteractive()) return
    const approvals = yield* Approvals
    const record = yield* approvals.get(approvalId)
    if (record.status === "pending") yield* reviewInteractively(approvalId)
  })

export const resumeCommand = Cli.make("resume", { json }, ({ json: asJson }) =>
  Effect.gen(function*() {
    const state = yield* State
    const saved = yield* state.load
    if (Option.isSome(saved)) yield* reviewPending(saved.value)
    const outcome = yield* (yield* Agent).resume({ onProgress: terminalProgress() })
    yield* reportOutcome(outcome, asJson)
  }).pipe(provideAgent)).pipe(
    Cli.withDescription("Continue the saved task: after an approval, a model start, or a crash")
  )

export const statusCommand = Cli.make("status", { json }, ({ json: asJson }) =>
  Effect.gen(function*() {
    const state = yield* State
    const saved = yield* state.load
    if (Option.isNone(saved)) {
      return yield* asJson ? printJson({ task: null }) : Console.log("no task saved")
    }
    const task = saved.value
    if (asJson) return yield* printJson({ task })
    yield* Console.log(`${bold(`task ${task.id}`)}  ${task.state}  ${dim(`${task.steps} steps, updated ${task.updated_at}`)}`)
    yield* Console.log(`request: ${sanitizeForTerminal(task.prompt)}`)
    if (task.paused !== null) yield* Console.log(`${yellow("paused")}: ${sanitizeForTerminal(task.paused.message)}\nnext: ${task.paused.next_command}`)
    if (task.draft !== null) yield* Console.log(`drafting ${task.draft.skill.name} (version ${task.draft.attempt})`)
    for (const node of task.graph?.nodes ?? []) {
      yield* Console.log(`  ${sanitizeForTerminal(node.id)} [${node.action}] ${node.status}${node.retries > 0 ? dim(` (${node.retries} retries)`) : ""}`)
    }
    if (task.error !== null) yield* Console.log(red(sanitizeForTerminal(task.error)))
  }).pipe(provideState)).pipe(Cli.withDescription("Show the saved task"))

export const resetCommand = Cli.make("reset", {}, () =>
  Effect.scoped(
    Effect.gen(function*() {
      const state = yield* State
      // Holding the lock proves no other process is running the task.
      yield* state.lock("reset")
      const saved = yield* state.load.pipe(Effect.option)
      yield* state.clear
      yield* Console.log(
        Option.match(Option.flatten(saved), {
          onNone: () => "no task saved; nothing to reset",
          onSome: (task) => `discarded task ${task.id.slice(0, 8)} (${task.state}); its history stays in the audit log`
        })
      )
    })
  ).pipe(provideState)).pipe(Cli.withDescription("Discard the saved task (refused while a task runs)"))
