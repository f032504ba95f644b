/**
 * The task commands: `run "<request>" [--yes]`, `resume`, `status`, `reset` and `tasks`.
 * `resume`, `status` and `reset` act on `--task ID` (an id or a prefix of 4+ characters), by
 * default the most recent unfinished task (else the most recent one), so one-task use reads as
 * it always did. Exit codes: 0 complete, 1 failed, 3 paused (an approval or a model; `resume`
 * continues).
 */
import { Args, Command as Cli, Options, Prompt } from "@effect/cli"
import { Clock, Console, Data, Effect, Option, Predicate } from "effect"
import { Agent, type AgentError, type AgentOutcome } from "../../Agent.ts"
import { resumeCommand as resumeTaskCommand, type Task } from "../../core/task.ts"
import { retryCommand, retryOf } from "../../core/taskMachine.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { Approvals, ApprovalsLive } from "../../layers/Approvals.ts"
import { AppConfig } from "../../layers/Config.ts"
import { defaultTask, resolveTaskId, State, type TaskList, unfinishedTasks } from "../../layers/State.ts"
import { reviewInteractively } from "../approvalPrompt.ts"
import { ExitCodes, ExitWith, renderError } from "../exit.ts"
import { terminalProgress } from "../progress.ts"
import { onCluster, provideAgent, provideCluster, provideConfig, provideState } from "../runtime.ts"
import { describeHolder, holderOnCluster, resumeOnCluster, runOnCluster } from "./onCluster.ts"
import { bold, dim, green, isInteractive, printJson, red, warn, yellow } from "../ui.ts"

const json = Options.boolean("json").pipe(Options.withDescription("Print the outcome as JSON, for scripts"))
const taskOption = Options.text("task").pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("The task's id (4+ characters of it are enough); default: the most recent unfinished task"),
  Options.optional
)

const short = (id: string): string => id.slice(0, 8)

const renderValue = (value: unknown): string =>
  sanitizeForTerminal(typeof value === "string" ? value : JSON.stringify(value, null, 2) ?? "null")

/** The command that takes a task on from where it stands: its pause's, a retry for a failed one, none for a complete one. */
const nextCommandOf = (task: Task): string | null =>
  task.state === "complete" ? null : task.state === "failed" ? retryCommand(task) : task.paused?.next_command ?? resumeTaskCommand(task)

/** What `resume --retry-failed` would do with a failed task, in a few words. */
const retryWouldDo = (task: Task): string => {
  const retry = retryOf(task)
  return retry._tag === "Plan"
    ? "plans the task again"
    : retry.nodes.length === 0
    ? "runs the rest of its graph"
    : `runs the failed node${retry.nodes.length === 1 ? "" : "s"} ${retry.nodes.join(", ")} again; completed nodes keep their results`
}

/** The `--json` outcome of `run` and `resume`: the same fields whether the task completed, failed or paused, or the command failed. */
const outcomeJson = (task: Task | null, paused: Task["paused"], error: string | null) => ({
  task_id: task?.id ?? null,
  state: task?.state ?? null,
  paused,
  result: task?.result ?? null,
  error,
  steps: task?.steps ?? null,
  next_command: task === null ? null : nextCommandOf(task)
})

/**
 * With `--json`, a command that fails before its task reaches an outcome still prints one on
 * stdout: the task as it was saved (when there is one; it is left there and `resume` continues
 * it), and the error. The error goes to stderr as always, with its exit code.
 */
const printFailure = (error: unknown, task: Option.Option<Task>) =>
  printJson(outcomeJson(
    Option.getOrNull(task),
    Option.match(task, { onNone: () => null, onSome: (t) => t.paused }),
    Predicate.hasProperty(error, "message") && typeof error.message === "string" ? error.message : String(error)
  ))

/** `--json` for errors raised before any task was chosen (config, confirmation, store); an `ExitWith` has said its part already. */
const jsonOnError = (asJson: boolean) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  asJson ? Effect.tapError(effect, (error) => (error instanceof ExitWith ? Effect.void : printFailure(error, Option.none()))) : effect

/** Waits for the task `id`; with `--json`, a failure prints the task as saved, then ends the command with the error's message and code. */
const awaitOutcome = (
  outcome: Effect.Effect<AgentOutcome, AgentError>,
  id: Option.Option<string>,
  asJson: boolean
): Effect.Effect<AgentOutcome, AgentError | ExitWith, Agent> =>
  asJson
    ? Effect.catchAll(outcome, (error) =>
      Effect.gen(function*() {
        const agent = yield* Agent
        const saved = Option.isSome(id) ? yield* agent.task(id.value).pipe(Effect.option) : Option.none<Task>()
        yield* printFailure(error, saved)
        return yield* new ExitWith({ code: renderError(error).code, error })
      }))
    : outcome

/** What a finished or paused task shows, and the exit code that goes with it. */
export const reportOutcome = (outcome: AgentOutcome, asJson: boolean, alreadyFailed = false) =>
  Effect.gen(function*() {
    const { paused, task } = outcome
    if (asJson) {
      yield* printJson(outcomeJson(task, paused, task.error))
    } else if (task.state === "complete") {
      yield* Console.log(green(`✓ task ${task.id.slice(0, 8)} complete`) + dim(` (${task.steps} steps)`))
      const result = task.result
      const entries = typeof result === "object" && result !== null && !Array.isArray(result) ? Object.entries(result) : []
      for (const [id, value] of entries) yield* Console.log(`${bold(sanitizeForTerminal(id))}: ${renderValue(value)}`)
    } else if (task.state === "failed") {
      // A plain `resume` does not run a failed task again: say what does.
      const note = alreadyFailed ? ` (it had failed before; \`resume\` alone does not run it again)` : ""
      yield* Console.error(red(`✗ task ${task.id.slice(0, 8)} failed`) + `${note}\n${sanitizeForTerminal(task.error ?? "no reason recorded")}`)
      yield* Console.error(`next: ${retryCommand(task)}   (${sanitizeForTerminal(retryWouldDo(task))})`)
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

/** How long ago `iso` was, in the largest whole unit: `42s`, `5m`, `3h`, `2d`. */
export const describeAge = (iso: string, nowMs: number): string => {
  const seconds = Math.max(0, Math.floor((nowMs - Date.parse(iso)) / 1000))
  if (!Number.isFinite(seconds)) return "?"
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`
  return `${Math.floor(seconds / 86400)}d`
}

/** A request on one line, cut to `width` characters. */
const oneLine = (text: string, width: number): string => {
  const flat = sanitizeForTerminal(text).replace(/\s+/g, " ").trim()
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat
}

/** The other unfinished tasks, as `run` and `status` mention them. */
const othersNote = (list: TaskList, except: string | null): Option.Option<string> => {
  const others = unfinishedTasks(list).filter((task) => task.id !== except)
  if (others.length === 0) return Option.none()
  const named = others.slice(0, 3).map((task) => `${short(task.id)} ${task.state}`).join(", ")
  const more = others.length > 3 ? `, and ${others.length - 3} more` : ""
  return Option.some(
    `${others.length} other unfinished task${others.length === 1 ? "" : "s"} (${named}${more}); \`luallm-agent tasks\` lists them, --task ID picks one`
  )
}

export const runCommand = Cli.make(
  "run",
  {
    prompt: Args.text({ name: "request" }).pipe(Args.withDescription("What the agent should do, in plain language")),
    yes: Options.boolean("yes").pipe(Options.withAlias("y"), Options.withDescription("Skip the task confirmation (never a skill promotion)")),
    json
  },
  ({ json: asJson, prompt, yes }) =>
    Effect.if(onCluster("run"), {
      onTrue: () =>
        Effect.gen(function*() {
          if (!(yield* confirmTask(prompt, yes))) return yield* Console.log("not started")
          yield* reportOutcome(yield* runOnCluster(prompt), asJson)
        }).pipe(provideConfig),
      onFalse: () =>
        Effect.gen(function*() {
          if (!(yield* confirmTask(prompt, yes))) return yield* Console.log("not started")
          const agent = yield* Agent
          // Another unfinished task does not stop a new one; say so, so it is not forgotten.
          const note = othersNote(yield* agent.tasks, null)
          if (Option.isSome(note)) yield* Console.error(dim(`note: starting a new task; ${note.value}`))
          const handle = yield* agent.start(prompt, { onProgress: terminalProgress() })
          // Interrupting the command (Ctrl-C) stops the task; its last transition stays saved.
          const outcome = yield* awaitOutcome(Effect.onInterrupt(handle.await, () => handle.interrupt), Option.some(handle.id), asJson)
          yield* reportOutcome(outcome, asJson)
        }).pipe(provideAgent)
    }).pipe(jsonOnError(asJson))
).pipe(Cli.withDescription("Plan and run a new task; drafts missing skills and pauses for their approval"))

/** On a terminal, a pending approval of this task is reviewed right away; elsewhere the task stays paused. */
const reviewPending = (task: Task) =>
  Effect.gen(function*() {
    const approvalId = task.state === "approval" ? task.draft?.approval_id ?? null : null
    if (approvalId === null || !isInteractive()) return
    const approvals = yield* Approvals
    const record = yield* approvals.get(approvalId)
    if (record.status === "pending") yield* reviewInteractively(approvalId)
  })

const retryFailed = Options.boolean("retry-failed").pipe(
  Options.withDescription(
    "Retry a failed task (--task ID, else the most recent failed one): its failed nodes run again, completed nodes keep their results; a task that failed before its graph ran is planned again"
  )
)

export const resumeCommand = Cli.make("resume", { json, task: taskOption, retryFailed }, ({ json: asJson, retryFailed: retrying, task }) =>
  // A retry runs in this process, on the same store (the task's lock keeps the runners off it).
  Effect.if(Effect.map(onCluster("resume"), (on) => on && !retrying), {
    onTrue: () => Effect.flatMap(resumeOnCluster(task), (outcome) => reportOutcome(outcome, asJson)),
    onFalse: () =>
      Effect.gen(function*() {
        const agent = yield* Agent
        const wanted = Option.getOrUndefined(task)
        const chosen = retrying && wanted === undefined ? Option.none<Task>() : Option.some(yield* agent.task(wanted))
        if (Option.isSome(chosen) && !retrying) yield* reviewPending(chosen.value)
        const id = Option.map(chosen, (t) => t.id)
        const outcome = yield* awaitOutcome(
          agent.resume({ ...(Option.isSome(id) ? { task: id.value } : {}), retryFailed: retrying, onProgress: terminalProgress() }),
          id,
          asJson
        )
        const alreadyFailed = !retrying && Option.isSome(chosen) && chosen.value.state === "failed"
        yield* reportOutcome(outcome, asJson, alreadyFailed)
      }).pipe(provideAgent)
  }).pipe(jsonOnError(asJson))).pipe(
    Cli.withDescription(
      "Continue a saved task: after an approval, a model that was down, or a crash\nIt acts on the task --task names, else the most recent unfinished one. With --retry-failed it retries a failed task (by default the most recent failed one): its failed nodes run again and the completed ones keep their results."
    )
  )

/** The task `--task` names, or the default one; `None` when nothing is saved. */
const chosenTask = (wanted: Option.Option<string>, list: TaskList) =>
  Option.match(wanted, {
    onNone: () => Effect.succeed(Option.map(defaultTask(list), (task) => task.id)),
    onSome: (id) => Effect.map(resolveTaskId(id), Option.some)
  })

/** Who holds a task on the cluster, for `status`; `None` in one process. */
type Holder<R> = (taskId: string) => Effect.Effect<Option.Option<{ readonly runner: string | null; readonly driving: boolean; readonly problem: string | null }>, never, R>

/** The approval a paused task waits for, when a human has already decided it (the task learns it on resume). */
const decidedApproval = (task: Task) =>
  Effect.gen(function*() {
    const approvalId = task.state === "approval" ? task.draft?.approval_id ?? null : null
    if (approvalId === null) return Option.none()
    const record = yield* (yield* Approvals).get(approvalId).pipe(Effect.option)
    return Option.filter(record, (r) => r.status !== "pending").pipe(
      Option.map((r) => ({ id: r.id, status: r.status, reason: r.reason, skill_name: r.skill_name }))
    )
  })

const showStatus = <R>(wanted: Option.Option<string>, asJson: boolean, holder: Holder<R>) =>
  Effect.gen(function*() {
    const state = yield* State
    const list = yield* state.list
    const id = yield* chosenTask(wanted, list)
    // With nothing readable to show, a damaged task is what the user has: say so, as `resume` would.
    const [damaged] = list.damaged
    if (Option.isNone(id) && damaged !== undefined) return yield* damaged
    const saved = Option.isNone(id) ? Option.none<Task>() : yield* state.load(id.value)
    const others = unfinishedTasks(list).filter((other) => Option.isNone(id) || other.id !== id.value)
    const held = Option.isNone(saved) ? Option.none() : yield* holder(saved.value.id)
    const decision = Option.isNone(saved) ? Option.none() : yield* decidedApproval(saved.value)
    if (asJson) {
      return yield* printJson({
        task: Option.getOrNull(saved),
        other_unfinished: others.map((other) => other.id),
        ...Option.match(held, { onNone: () => ({}), onSome: (cluster) => ({ cluster }) }),
        ...Option.match(saved, {
          onNone: () => ({}),
          onSome: (task) => ({
            decided_approval: Option.getOrNull(decision),
            next_command: Option.isSome(decision) ? resumeTaskCommand(task) : nextCommandOf(task)
          })
        })
      })
    }
    if (Option.isNone(saved)) return yield* Console.log("no task saved")
    const task = saved.value
    yield* Console.log(`${bold(`task ${task.id}`)}  ${task.state}  ${dim(`${task.steps} steps, updated ${task.updated_at}`)}`)
    yield* Console.log(`request: ${sanitizeForTerminal(task.prompt)}`)
    if (Option.isSome(decision)) {
      // A human decided while the task was paused: what it waited for is over, and resume acts on it.
      const { reason, skill_name, status } = decision.value
      yield* Console.log(
        status === "rejected"
          ? `${red("rejected")}: the drafted skill ${skill_name} was rejected (${sanitizeForTerminal(reason ?? "no reason given")}); the task fails with that reason when it is continued.`
          : `${green("approved")}: the drafted skill ${skill_name} was approved; the task goes on with it when it is continued.`
      )
      yield* Console.log(`next: ${resumeTaskCommand(task)}`)
    } else if (task.paused !== null) yield* Console.log(`${yellow("paused")}: ${sanitizeForTerminal(task.paused.message)}\nnext: ${task.paused.next_command}`)
    if (task.draft !== null) yield* Console.log(`drafting ${task.draft.skill.name} (version ${task.draft.attempt})`)
    for (const node of task.graph?.nodes ?? []) {
      yield* Console.log(`  ${sanitizeForTerminal(node.id)} [${node.action}] ${node.status}${node.retries > 0 ? dim(` (${node.retries} retries)`) : ""}`)
    }
    if (task.error !== null) yield* Console.log(red(sanitizeForTerminal(task.error)))
    if (Option.isSome(held)) yield* Console.log(describeHolder(held.value))
    const note = othersNote(list, task.id)
    if (Option.isSome(note)) yield* Console.log(dim(`note: ${note.value}`))
  })

export const statusCommand = Cli.make("status", { json, task: taskOption }, ({ json: asJson, task: wanted }) =>
  Effect.if(onCluster("status"), {
    onTrue: () => showStatus(wanted, asJson, (id) => Effect.asSome(holderOnCluster(id))).pipe(provideCluster),
    onFalse: () => showStatus(wanted, asJson, () => Effect.succeedNone).pipe(Effect.provide(ApprovalsLive), provideState)
  })).pipe(
    Cli.withDescription("Show a saved task: its state, its nodes, and what comes next\nIt shows the task --task names, else the most recent unfinished one; on the task cluster, also the runner that holds it.")
  )

export const resetCommand = Cli.make("reset", { task: taskOption }, ({ task }) =>
  Effect.gen(function*() {
    const agent = yield* Agent
    const done = yield* agent.reset(Option.getOrUndefined(task)).pipe(
      Effect.map(Option.some),
      // With no --task and nothing saved, there is nothing to do.
      Effect.catchTag("NoTaskToResume", (error) => (Option.isNone(task) ? Effect.succeed(Option.none()) : Effect.fail(error)))
    )
    if (Option.isNone(done)) return yield* Console.log("no task saved; nothing to reset")
    const { id, rejectedApprovals, state } = done.value
    yield* Console.log(`discarded task ${short(id)} (${state ?? "damaged"}); its history stays in the audit log`)
    if (rejectedApprovals.length > 0) {
      yield* Console.log(`rejected its pending approval${rejectedApprovals.length === 1 ? "" : "s"} ${rejectedApprovals.map(short).join(", ")}`)
    }
  }).pipe(provideAgent)).pipe(
    Cli.withDescription("Discard a saved task and reject its pending approvals\nIt discards the task --task names, else the most recent unfinished one; refused while a process drives it. Its history stays in the audit log.")
  )

export const tasksCommand = Cli.make(
  "tasks",
  { json: Options.boolean("json").pipe(Options.withDescription("Print { tasks, damaged } as JSON")) },
  ({ json: asJson }) =>
    Effect.gen(function*() {
      const list = yield* (yield* State).list
      if (asJson) {
        return yield* printJson({
          tasks: list.tasks,
          damaged: list.damaged.map((damaged) => ({ task_id: damaged.taskId, path: damaged.path, reason: damaged.reason }))
        })
      }
      const now = yield* Clock.currentTimeMillis
      if (list.tasks.length === 0 && list.damaged.length === 0) yield* Console.log("no tasks saved")
      else if (list.tasks.length > 0) {
        const rows = list.tasks.map((task) => [short(task.id), task.state, describeAge(task.updated_at, now), oneLine(task.prompt, 72)])
        const widths = [8, Math.max(5, ...rows.map((row) => row[1]?.length ?? 0)), Math.max(3, ...rows.map((row) => row[2]?.length ?? 0))]
        const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()
        yield* Console.log(dim(line(["id", "state", "age", "request"])))
        for (const row of rows) yield* Console.log(line(row))
      }
      for (const damaged of list.damaged) yield* Console.error(warn(sanitizeForTerminal(damaged.message)))
    }).pipe(provideState)
).pipe(Cli.withDescription("List the saved tasks: id, state, age (since the last change) and request"))
