/**
 * The task commands: `run "<request>" [--yes] [--allow-exec] [--plan-only]`, `resume`, `status`,
 * `reset` and `tasks`. `resume`, `status` and `reset` act on `--task ID` (an id or a prefix of 4+
 * characters), by default the most recent unfinished task (else the most recent one), so one-task
 * use reads as it always did. The agent's questions (the plan, a draft, an exec grant) are asked
 * on a terminal and pause the task elsewhere (`../approver.ts`). Exit codes: 0 complete (or
 * declined by the human, or a plan printed), 1 failed, 3 paused (a question or a model; `resume`
 * continues).
 */
import { Args, Command as Cli, Options } from "@effect/cli"
import { Clock, Console, Effect, Option, Predicate } from "effect"
import { Agent, type AgentError, type AgentOutcome } from "../../Agent.ts"
import { summarize } from "../../agent/questions.ts"
import type { PlanSummary } from "../../core/planSummary.ts"
import { resumeCommand as resumeTaskCommand, type Task } from "../../core/task.ts"
import { retryCommand, retryOf } from "../../core/taskMachine.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { Approvals, ApprovalsLive, shellQuote } from "../../layers/Approvals.ts"
import type { StandingAnswers } from "../../layers/Approver.ts"
import { defaultTask, resolveTaskId, State, type TaskList, unfinishedTasks } from "../../layers/State.ts"
import { cliApprover } from "../approver.ts"
import { ExitCodes, ExitWith, renderError } from "../exit.ts"
import { describePlan } from "../planView.ts"
import { terminalProgress } from "../progress.ts"
import { onCluster, provideAgent, provideAgentWith, provideCluster, provideSkills, provideState } from "../runtime.ts"
import { describeHolder, ExecGrantNotSent, holderOnCluster, resumeOnCluster, runOnCluster } from "./onCluster.ts"
import { bold, dim, green, printJson, red, warn, yellow } from "../ui.ts"

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
  task.state === "complete" || task.state === "declined" ? null : task.state === "failed" ? retryCommand(task) : task.paused?.next_command ?? resumeTaskCommand(task)

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

/** The plan of a task that waits for its confirmation, as a human reviews it; `None` for any other task. */
const planAwaitingConfirmation = (task: Task) =>
  task.state === "confirmation" && task.graph !== null
    ? Effect.map(summarize(task.graph, task.missing_skills), Option.some)
    : Effect.succeed(Option.none<PlanSummary>())

/**
 * The same, for a command without the agent's services (on the cluster, `status`): the skills'
 * headers are read only for a task that waits for its confirmation.
 */
const planOfTask = (task: Task) =>
  task.state === "confirmation" ? planAwaitingConfirmation(task).pipe(provideSkills) : Effect.succeed(Option.none<PlanSummary>())

/** `reportOutcome` where the agent's services are not at hand (a task on the cluster). */
const reportOutcomeWithPlan = (outcome: AgentOutcome, asJson: boolean) =>
  Effect.flatMap(planOfTask(outcome.task), (plan) => reportOutcome(outcome, asJson, plan))

/**
 * What a finished or paused task shows, and the exit code that goes with it; `plan`: the plan of
 * a task that waits for its confirmation (`planAwaitingConfirmation`); `alreadyFailed`: a plain
 * `resume` found the task failed (it does not run it again).
 */
export const reportOutcome = (outcome: AgentOutcome, asJson: boolean, plan: Option.Option<PlanSummary> = Option.none(), alreadyFailed = false) =>
  Effect.gen(function*() {
    const { paused, task } = outcome
    if (asJson) {
      yield* printJson({ ...outcomeJson(task, paused, task.error), ...(Option.isSome(plan) ? { plan: plan.value } : {}) })
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
    } else if (task.state === "declined") {
      yield* Console.log(`${yellow(`task ${task.id.slice(0, 8)} declined`)}: ${sanitizeForTerminal(task.error ?? "a human said no")}`)
    } else if (paused !== null) {
      if (Option.isSome(plan)) yield* Console.log(describePlan(task.prompt, plan.value))
      yield* Console.log(`${yellow(`⏸ task ${task.id.slice(0, 8)} paused`)} in ${task.state}: ${sanitizeForTerminal(paused.message)}`)
      yield* Console.log(`next: ${paused.next_command}`)
    }
    // A plan (or an exec grant) the human declined ended the task as asked: not a failure.
    const code = task.state === "complete" || task.state === "declined"
      ? ExitCodes.ok
      : task.state === "failed"
      ? ExitCodes.failure
      : ExitCodes.paused
    if (code !== ExitCodes.ok) return yield* new ExitWith({ code })
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

const yes = Options.boolean("yes").pipe(
  Options.withAlias("y"),
  Options.withDescription("Confirm the plan without being asked (approval_tiers.task_confirmation \"prompt\"; never a skill approval)")
)
const allowExec = Options.boolean("allow-exec").pipe(
  Options.withDescription("Grant exec to the task's skills that run commands (shell_safe), for this task only, without being asked")
)

/** What `run` and `resume`'s flags answer ahead of time. */
const answersOf = (flags: { readonly yes: boolean; readonly allowExec: boolean }): StandingAnswers => ({
  ...(flags.yes ? { confirmPlan: "--yes" } : {}),
  ...(flags.allowExec ? { grantExec: "--allow-exec" } : {})
})

/** `run --plan-only`: the plan, and nothing saved or run; exit 0 with a plan, 1 without one. */
const printPlanOnly = (prompt: string, asJson: boolean) =>
  Effect.gen(function*() {
    const { plan, task } = yield* (yield* Agent).plan(prompt, { onProgress: terminalProgress() })
    if (asJson) {
      yield* printJson({ plan_only: true, saved: false, request: prompt, state: task.state, model: task.model, plan, paused: task.paused, error: task.error })
    } else if (plan !== null) {
      yield* Console.log(describePlan(prompt, plan))
      yield* Console.log(dim(`plan only: nothing ran and no task was saved; \`luallm-agent run ${sanitizeForTerminal(shellQuote(prompt))}\` plans it again and runs it`))
    } else if (task.paused !== null) {
      yield* Console.error(`${warn(`no plan: ${sanitizeForTerminal(task.paused.message)}`)} Nothing was saved: run this command again once the model runs.`)
    } else {
      yield* Console.error(red(`✗ no plan`) + `\n${sanitizeForTerminal(task.error ?? "no reason recorded")}`)
    }
    if (plan === null) return yield* new ExitWith({ code: ExitCodes.failure })
  })

export const runCommand = Cli.make(
  "run",
  {
    prompt: Args.text({ name: "request" }).pipe(Args.withDescription("What the agent should do, in plain language")),
    yes,
    allowExec,
    planOnly: Options.boolean("plan-only").pipe(
      Options.withDescription("Plan the request, print the plan (--json: as JSON) and stop: nothing is drafted, run or saved as a task")
    ),
    json
  },
  ({ allowExec, json: asJson, planOnly, prompt, yes }) =>
    planOnly
      ? printPlanOnly(prompt, asJson).pipe(provideAgent)
      : Effect.if(onCluster("run"), {
        onTrue: () =>
          Effect.gen(function*() {
            if (allowExec) return yield* new ExecGrantNotSent({ command: "run", task: null })
            yield* reportOutcomeWithPlan(yield* runOnCluster(prompt, { confirmPlan: yes }), asJson)
          }),
        onFalse: () =>
          Effect.gen(function*() {
            const agent = yield* Agent
            // Another unfinished task does not stop a new one; say so, so it is not forgotten.
            const note = othersNote(yield* agent.tasks, null)
            if (Option.isSome(note)) yield* Console.error(dim(`note: starting a new task; ${note.value}`))
            const handle = yield* agent.start(prompt, { onProgress: terminalProgress(), answers: answersOf({ yes, allowExec }) })
            // Interrupting the command (Ctrl-C) stops the task; its last transition stays saved.
            const outcome = yield* awaitOutcome(Effect.onInterrupt(handle.await, () => handle.interrupt), Option.some(handle.id), asJson)
            yield* reportOutcome(outcome, asJson, yield* planAwaitingConfirmation(outcome.task))
          }).pipe(provideAgentWith(cliApprover()))
      }).pipe(jsonOnError(asJson))
).pipe(
  Cli.withDescription(
    "Plan a new task, show its plan for your confirmation, then run it\n" +
      "A missing skill is drafted, tested and shown to a human before it is trusted; a skill that runs commands asks for exec. " +
      "On a terminal these questions are asked there; elsewhere the task pauses (exit 3) with the command that continues it. " +
      "--plan-only prints the plan and stops."
  )
)

const retryFailed = Options.boolean("retry-failed").pipe(
  Options.withDescription(
    "Retry a failed task (--task ID, else the most recent failed one): its failed nodes run again, completed nodes keep their results; a task that failed before its graph ran is planned again"
  )
)

export const resumeCommand = Cli.make(
  "resume",
  { json, task: taskOption, yes, allowExec, retryFailed },
  ({ allowExec, json: asJson, retryFailed: retrying, task, yes }) =>
    // A retry runs in this process, on the same store (the task's lock keeps the runners off it).
    Effect.if(Effect.map(onCluster("resume"), (on) => on && !retrying), {
      onTrue: () =>
        Effect.gen(function*() {
          if (allowExec) return yield* new ExecGrantNotSent({ command: "resume", task: Option.getOrNull(task) })
          yield* reportOutcomeWithPlan(yield* resumeOnCluster(task, { confirmPlan: yes }), asJson)
        }),
      onFalse: () =>
        Effect.gen(function*() {
          const agent = yield* Agent
          const wanted = Option.getOrUndefined(task)
          const chosen = retrying && wanted === undefined ? Option.none<Task>() : Option.some(yield* agent.task(wanted))
          const id = Option.map(chosen, (t) => t.id)
          // On a terminal, what the task waits for (its plan, its draft, an exec grant) is asked again right away.
          const outcome = yield* awaitOutcome(
            agent.resume({
              ...(Option.isSome(id) ? { task: id.value } : {}),
              retryFailed: retrying,
              onProgress: terminalProgress(),
              answers: answersOf({ yes, allowExec })
            }),
            id,
            asJson
          )
          const alreadyFailed = !retrying && Option.isSome(chosen) && chosen.value.state === "failed"
          yield* reportOutcome(outcome, asJson, yield* planAwaitingConfirmation(outcome.task), alreadyFailed)
        }).pipe(provideAgentWith(cliApprover()))
    }).pipe(jsonOnError(asJson))
).pipe(
  Cli.withDescription(
    "Continue a saved task: after a question, a model that was down, or a crash\n" +
      "It acts on the task --task names, else the most recent unfinished one. On a terminal what the task waits for " +
      "(its plan, its draft's review, an exec grant) is asked again; elsewhere --yes confirms its plan and --allow-exec grants exec. " +
      "With --retry-failed it retries a failed task (by default the most recent failed one): its failed nodes run again and the completed ones keep their results."
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
    const plan = yield* planOfTask(task)
    if (Option.isSome(plan)) yield* Console.log(describePlan(task.prompt, plan.value))
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
