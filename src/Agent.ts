/**
 * The `Agent` service: the orchestrator other Effect apps embed.
 *
 * `start(prompt)` creates a task and drives it in the background, returning a handle at once
 * (its id, a stream of its progress, and its outcome to await); `run` is `start` then `await`.
 * `resume` continues a saved task (after a pause for an approval or a model, or after a crash);
 * `step(task)` performs exactly one transition. Several tasks run at once in one process,
 * sharing the LLM and the sandbox, at most `limits.max_concurrent_tasks` of them stepping at a
 * time; each is driven by one fiber at a time, which holds the task's lock in `State`.
 *
 * The transition logic is pure (`core/taskMachine.ts`); this file only performs the command the
 * current state asks for, then saves the new task with its audit line, after every transition.
 * Questions for a human (the plan's confirmation, a draft's approval, an exec grant) go to the
 * `Approver` the app provides; a task waiting for an answer gives its turn to another meanwhile.
 * `plan(prompt)` plans without saving or running anything (`run --plan-only`).
 */
import type { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Data, Effect, Fiber, FiberMap, Layer, Option, PubSub, Ref, Stream, Take } from "effect"
import type { PlanSummary } from "./core/planSummary.ts"
import { isTerminal, newTask, type Pause, type Task } from "./core/task.ts"
import { Command, commandFor, Event, isWait, retryCommand, transition, type Transition } from "./core/taskMachine.ts"
import { checkApproval, type DraftWriteError, requestApproval, testDraft, writeDraft } from "./agent/drafting.ts"
import { execute } from "./agent/execution.ts"
import { TaskTokens } from "./agent/llmCall.ts"
import { canStartModels, ensureModel, plan } from "./agent/planning.ts"
import { both, type Progress, type ProgressCallback, type ProgressListener, toListener } from "./agent/progress.ts"
import { askExecGrant, confirmPlan, summarize } from "./agent/questions.ts"
import { type ApprovalError, Approvals, ApprovalsLive } from "./layers/Approvals.ts"
import { type ApprovalCallbackFailed, Approver, ApproverPause, type ApproverShape, type StandingAnswers, withStandingAnswers } from "./layers/Approver.ts"
import { Audit, type AuditEvent, type AuditWriteError, inTask } from "./layers/Audit.ts"
import { AppConfig } from "./layers/Config.ts"
import { isModelUnavailable, type Llm, type LlmError } from "./layers/Llm.ts"
import type { Luallm, ModelNotReady } from "./layers/Luallm.ts"
import { SandboxLive } from "./layers/Sandbox.ts"
import { type SkillRunner, SkillRunnerLive } from "./layers/SkillRunner.ts"
import { type SkillLoadError, type Skills, SkillsLive } from "./layers/Skills.ts"
import {
  defaultTask,
  resolveTaskId,
  State,
  type StateConflict,
  type StateCorrupt,
  type StateIoError,
  StateLive,
  type StateLocked,
  type TaskAmbiguous,
  type TaskList,
  type TaskNotFound
} from "./layers/State.ts"

export type { Progress, ProgressCallback, ProgressListener } from "./agent/progress.ts"

export class TaskInProgress extends Data.TaggedError("TaskInProgress")<{ readonly id: string; readonly state: string }> {
  override get message() {
    const id = this.id.slice(0, 8)
    return `Task ${id} (in state ${this.state}) is being driven by this process right now. Wait for it (its handle's \`await\`) or stop it (\`interrupt\`); then continue it with \`Agent.resume({ task: "${id}" })\` or discard it with \`Agent.reset("${id}")\` (from a shell: \`luallm-agent resume --task ${id}\`, \`luallm-agent reset --task ${id}\`).`
  }
}

export class TaskIdTaken extends Data.TaggedError("TaskIdTaken")<{ readonly id: string; readonly location: string }> {
  override get message() {
    return `A task with the id ${this.id} is already saved in ${this.location}; a new task needs an id of its own. Continue that one with \`luallm-agent resume --task ${this.id.slice(0, 8)}\` (\`Agent.resume({ task: "${this.id}" })\` in an app), or start without an id.`
  }
}

export class NoTaskToResume extends Data.TaggedError("NoTaskToResume")<{ readonly location: string }> {
  override get message() {
    return `There is no saved task in ${this.location}. Start one with \`luallm-agent run "<request>"\` (\`Agent.start\` or \`Agent.run\` in an app).`
  }
}

export class NothingToRetry extends Data.TaggedError("NothingToRetry")<{
  /** The task asked for, or `null` when none was named and no task failed. */
  readonly id: string | null
  readonly state: string | null
  readonly location: string
}> {
  override get message() {
    if (this.id === null) {
      return `No failed task in ${this.location} to retry. \`luallm-agent tasks\` lists the saved tasks; \`luallm-agent resume --task ID\` continues an unfinished one.`
    }
    const id = this.id.slice(0, 8)
    return this.state === "complete"
      ? `Task ${id} is complete: there is nothing to retry. Start a new one with \`luallm-agent run "<request>"\`.`
      : `Task ${id} is in state ${this.state ?? "unknown"}, not failed: only a failed task is retried. Continue it with \`luallm-agent resume --task ${id}\`.`
  }
}

export interface RunOptions {
  /** Receives transitions, node changes and LLM calls as they happen: a listener returning an Effect, or a plain callback. */
  readonly onProgress?: ProgressCallback
  /**
   * Answers given ahead of time for this drive (the CLI's `--yes`, `--allow-exec`): `confirmPlan`
   * confirms the plan under the `prompt` tier, `grantExec` grants exec to the task's skills; each
   * names who gave it. Other questions go to the `Approver`.
   */
  readonly answers?: StandingAnswers
}

export interface StartOptions extends RunOptions {
  /** The new task's id (by default a fresh UUID): a task cluster names its tasks before they start. */
  readonly id?: string
}

export interface ResumeOptions extends RunOptions {
  /** The task's id or an unambiguous prefix; by default the most recent unfinished task (with `retryFailed`, the most recent failed one). */
  readonly task?: string
  /**
   * Retry a failed task: run its failed nodes again (and those skipped because of them), keeping
   * the completed nodes' results; a task that failed before its graph ran is planned again.
   * Fails with `NothingToRetry` when the task did not fail.
   */
  readonly retryFailed?: boolean
}

/** Where a drive stopped: finished (complete or failed), or paused with the command that continues. */
export interface AgentOutcome {
  readonly task: Task
  readonly paused: Pause | null
}

/** Everything the agent can fail with; a failed *task* is not an error but an outcome. */
export type AgentError =
  | TaskInProgress
  | TaskIdTaken
  | NoTaskToResume
  | NothingToRetry
  | TaskNotFound
  | TaskAmbiguous
  | StateIoError
  | StateCorrupt
  | StateLocked
  | StateConflict
  | AuditWriteError
  | LlmError
  | ModelNotReady
  | SkillLoadError
  | ApprovalError
  | ApprovalCallbackFailed
  | DraftWriteError

/** A task running in the background. */
export interface TaskHandle {
  readonly id: string
  /** The task's progress from its start (a late subscriber gets what it missed, up to 10,000 events); ends when the task finishes or pauses. */
  readonly events: Stream.Stream<Progress>
  /** Waits for the task to finish or pause. */
  readonly await: Effect.Effect<AgentOutcome, AgentError>
  /** Stops the task (its last transition stays saved; `resume` continues it). */
  readonly interrupt: Effect.Effect<void>
}

/** What `plan` made of a request: nothing of it was saved or run. */
export interface PlanPreview {
  /**
   * The task as planning left it, not saved: with its graph (state `confirmation`, `skill_draft`
   * or `graph_exec`), or `failed` (no valid plan), or paused for a model that is not running.
   */
  readonly task: Task
  /** The plan as a human reviews it; `null` when there is none. */
  readonly plan: PlanSummary | null
}

/** What `reset` discarded. */
export interface ResetOutcome {
  readonly id: string
  /** Its state, or `null` when it could not be read. */
  readonly state: string | null
  /** Its pending approvals, now rejected. */
  readonly rejectedApprovals: ReadonlyArray<string>
}

export interface AgentShape {
  /** Creates a task for `prompt` and drives it in the background; the handle comes back at once. */
  readonly start: (
    prompt: string,
    options?: StartOptions
  ) => Effect.Effect<TaskHandle, TaskIdTaken | StateCorrupt | StateIoError | StateConflict | AuditWriteError>
  /** Creates a task for `prompt` and drives it until it finishes or pauses (`start`, then `await`). */
  readonly run: (prompt: string, options?: RunOptions) => Effect.Effect<AgentOutcome, AgentError>
  /** Continues a saved task (by default the most recent unfinished one): after an approval, a model start, or a crash; `retryFailed` retries a failed one. */
  readonly resume: (options?: ResumeOptions) => Effect.Effect<AgentOutcome, AgentError>
  /** Plans `prompt` and returns the plan without saving a task or running, drafting or confirming anything. */
  readonly plan: (prompt: string, options?: RunOptions) => Effect.Effect<PlanPreview, AgentError>
  /** Performs the current state's command and one transition; saves and audits it. */
  readonly step: (task: Task, options?: RunOptions) => Effect.Effect<Task, AgentError>
  /** The saved tasks, most recently updated first. */
  readonly tasks: Effect.Effect<TaskList, StateIoError>
  /** A saved task by id or prefix; by default the most recent unfinished one (else the most recent). */
  readonly task: (id?: string) => Effect.Effect<Task, NoTaskToResume | TaskNotFound | TaskAmbiguous | StateCorrupt | StateIoError>
  /** Discards a saved task (by default the most recent unfinished one) and rejects its pending approvals. */
  readonly reset: (id?: string) => Effect.Effect<ResetOutcome, AgentError>
}

type StepServices =
  | AppConfig
  | Audit
  | State
  | Llm
  | Luallm
  | Skills
  | SkillRunner
  | Approvals
  | Approver
  | FileSystem.FileSystem
  | Path.Path

const nowIso = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

/** Performs what the task's state asks for; the world's answer is an `Event`. */
const perform = (task: Task, progress: ProgressListener) => {
  const command = commandFor(task)
  return Command.$match(command, {
    EnsureModel: () => ensureModel(task),
    Plan: ({ attempt, feedback }) => plan(task, attempt, feedback, progress),
    ConfirmPlan: ({ graph, missing }) => confirmPlan(task, graph, missing),
    DraftSkill: ({ draft }) => writeDraft(task, draft, false, progress),
    ReworkSkill: ({ draft }) => writeDraft(task, draft, true, progress),
    TestSkill: ({ draft }) => testDraft(draft),
    RequestApproval: ({ draft }) => requestApproval(task, draft),
    CheckApproval: ({ approvalId }) => checkApproval(task, approvalId),
    // Each skill that runs host commands gets its exec grant (or the task pauses) before any node runs.
    ExecuteGraph: ({ graph }) =>
      Effect.flatMap(askExecGrant(task, graph), Option.match({ onSome: Effect.succeed, onNone: () => execute(task, graph, progress) })),
    Finished: () => Effect.dieMessage(`step() called on a finished task (${task.state})`)
  })
}

export class Agent extends Context.Tag("Agent")<Agent, AgentShape>() {}

/** How many progress events a handle keeps for a subscriber that comes late. */
const replayedEvents = 10_000

export const makeAgent = Effect.gen(function*() {
  const context = yield* Effect.context<StepServices>()
  const state = yield* State
  const audit = yield* Audit
  const approvals = yield* Approvals
  const app = yield* AppConfig
  /** The tasks this process drives, by id: at most one fiber each. */
  const running = yield* FiberMap.make<string, AgentOutcome, AgentError>()
  /** Orders "is it running? then run it", so two callers cannot both start a driver for one task. */
  const launching = yield* Effect.makeSemaphore(1)
  const turns = yield* Effect.makeSemaphore(app.config.limits.max_concurrent_tasks)

  const approver = yield* Approver
  /** While a task waits for a human's answer it gives its turn to another task, and takes one again after. */
  const offTurn = Approver.of({ ask: (question) => Effect.acquireUseRelease(turns.release(1), () => approver.ask(question), () => turns.take(1)) })

  const step = (task: Task, options: RunOptions = {}) =>
    stepWith(task, toListener(options.onProgress), withStandingAnswers(approver, options.answers ?? {}))

  /** Performs the state's command; its event, with the tokens its model calls used. */
  const performCounted = (task: Task, progress: ProgressListener, asking: ApproverShape) =>
    Effect.gen(function*() {
      const spent = yield* Ref.make(0)
      const tokens = TaskTokens.of({ used: Effect.map(Ref.get(spent), (n) => task.tokens_used + n), add: (n) => Ref.update(spent, (s) => s + n) })
      // A model that stopped or stopped answering mid-task pauses the task in model_wait, like one
      // missing at the start; `resume` asks again from the same state.
      const event = yield* perform(task, progress).pipe(
        Effect.provideService(TaskTokens, tokens),
        Effect.provideService(Approver, asking),
        Effect.catchTag("ModelNotRunning", (error) =>
          Effect.map(canStartModels, (autoStart): Event =>
            Event.ModelMissing({ model: error.model, startCommand: error.startCommand, autoStart }))),
        Effect.catchIf(isModelUnavailable, (error) =>
          Effect.succeed(Event.ModelFailed({ model: task.state === "planning" ? task.model : null, error: error.message })))
      )
      return { event, tokens: yield* Ref.get(spent) }
    })

  const stepWith = (task: Task, progress: ProgressListener, asking: ApproverShape) =>
    Effect.gen(function*() {
      const { event, tokens } = yield* performCounted(task, progress, asking)
      // A graph run saved its progress as it went; the transition starts from that.
      const base = event._tag === "GraphFinished" ? { ...task, graph: event.graph } : task
      const next = transition({ ...base, tokens_used: task.tokens_used + tokens }, event, app.config.limits, yield* nowIso)
      // Waiting for a human changes nothing worth a line in the log (the pause is audited by `drive`).
      yield* saveTransition(next, progress, !isWait(event))
      return next.task
    }).pipe(inTask(task.id), Effect.provide(context))

  /** Saves a transition with its audit line (`logged`), and reports it. */
  const saveTransition = (next: Transition, progress: ProgressListener, logged = true) =>
    Effect.gen(function*() {
      // A task's end (complete, failed, declined) is committed with its last transition: a crash cannot keep one without the other.
      const ending: ReadonlyArray<AuditEvent> = isTerminal(next.task)
        ? [{ event: `task.${next.task.state}`, data: { steps: next.task.steps, ...(next.task.error === null ? {} : { error: next.task.error }) } }]
        : []
      yield* state.save(
        next.task,
        logged
          ? [{
            event: "task.transition",
            data: { from: next.from, to: next.to, reason: next.reason, step: next.task.steps, skill: next.task.draft?.skill.name ?? null }
          }, ...ending]
          : ending
      )
      if (logged) yield* progress({ _tag: "Transition", from: next.from, to: next.to, reason: next.reason })
    })

  /** Steps until the task finishes or pauses. */
  const drive = (start: Task, progress: ProgressListener, answers: StandingAnswers) =>
    Effect.gen(function*() {
      const asking = withStandingAnswers(offTurn, answers)
      let task = start
      // A paused task is retried once per drive: the first step re-checks what it waited for.
      let first = true
      while (!isTerminal(task) && (first || task.paused === null)) {
        task = yield* stepWith(task, progress, asking)
        first = false
      }
      if (!isTerminal(task) && task.paused !== null) {
        yield* audit.log("task.paused", { reason: task.paused.reason, next: task.paused.next_command })
      }
      return { task, paused: task.paused } satisfies AgentOutcome
    }).pipe(inTask(start.id))

  /**
   * Drives task `id` in the background: waits for a turn, takes the task's lock, reads the task
   * (`begin` gets the saved one, or `None` when it is gone), then steps it. Progress goes to the
   * caller's callback and to the handle's stream.
   */
  const launch = (
    id: string,
    command: string,
    begin: (saved: Option.Option<Task>, progress: ProgressListener) => Effect.Effect<Task, AgentError>,
    options: RunOptions
  ) =>
    Effect.gen(function*() {
      const events = yield* PubSub.unbounded<Take.Take<Progress>>({ replay: replayedEvents })
      const publish: ProgressListener = (progress) => PubSub.publish(events, Take.of(progress))
      const progress = both(toListener(options.onProgress), publish)
      const body = turns.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        yield* state.lock(id, command)
        const task = yield* begin(yield* state.load(id), progress)
        if (isTerminal(task)) return { task, paused: null } satisfies AgentOutcome
        return yield* drive(task, progress, options.answers ?? {})
      }))).pipe(
        inTask(id),
        Effect.ensuring(PubSub.publish(events, Take.end))
      )
      const fiber = yield* launching.withPermits(1)(Effect.gen(function*() {
        const current = yield* FiberMap.get(running, id).pipe(Effect.option)
        if (Option.isSome(current)) {
          const saved = yield* state.load(id).pipe(Effect.option, Effect.map(Option.flatten))
          return yield* new TaskInProgress({ id, state: Option.match(saved, { onNone: () => "unknown", onSome: (t) => t.state }) })
        }
        return yield* FiberMap.run(running, id, body)
      }))
      return {
        id,
        events: Stream.flattenTake(Stream.fromPubSub(events)),
        await: Fiber.join(fiber),
        interrupt: Fiber.interrupt(fiber).pipe(Effect.asVoid)
      } satisfies TaskHandle
    })

  const start = (prompt: string, options: StartOptions = {}) =>
    Effect.gen(function*() {
      // A given id must be new: saving over a task would replace its history.
      if (options.id !== undefined && Option.isSome(yield* state.load(options.id))) {
        return yield* new TaskIdTaken({ id: options.id, location: state.location })
      }
      const task = newTask(options.id ?? crypto.randomUUID(), prompt, yield* nowIso)
      yield* state.save(task, [{ event: "task.start", data: { prompt } }])
      return yield* launch(task.id, "run", (saved) => Effect.succeed(Option.getOrElse(saved, () => task)), options).pipe(
        // A new id cannot be running yet.
        Effect.catchTag("TaskInProgress", (error) => Effect.die(error))
      )
    })

  /** `run` and `resume` wait for the task; interrupting them stops it, as before handles existed. */
  const awaitHandle = (handle: TaskHandle) => Effect.onInterrupt(handle.await, () => handle.interrupt)

  const run = (prompt: string, options: RunOptions = {}) => Effect.flatMap(start(prompt, options), awaitHandle)

  /** The task a caller names, or the default one; `NoTaskToResume` when there is none. */
  const chooseTask = (id: string | undefined) =>
    id === undefined
      ? Effect.flatMap(state.list, (list) =>
        Option.match(defaultTask(list), {
          onNone: () => Effect.fail(new NoTaskToResume({ location: state.location })),
          onSome: (task) => Effect.succeed(task.id)
        }))
      : Effect.flatMap(
        // A full id is looked up directly (a damaged task is there too); a prefix needs the list.
        state.load(id).pipe(Effect.map(Option.isSome), Effect.catchTag("StateCorrupt", () => Effect.succeed(true))),
        (saved) => (saved ? Effect.succeed(id) : resolveTaskId(id).pipe(Effect.provideService(State, state)))
      )

  /** The most recently updated failed task: what `resume --retry-failed` retries when it names none. */
  const lastFailed = Effect.flatMap(state.list, (list) =>
    Option.match(Option.fromNullable(list.tasks.find((task) => task.state === "failed")), {
      onNone: () => Effect.fail(new NothingToRetry({ id: null, state: null, location: state.location })),
      onSome: (task) => Effect.succeed(task.id)
    }))

  /** A failed task made ready to run again (`RetryFailed`), saved and audited before it is driven. */
  const retry = (task: Task, progress: ProgressListener) =>
    Effect.gen(function*() {
      if (task.state !== "failed") return yield* new NothingToRetry({ id: task.id, state: task.state, location: state.location })
      const next = transition(task, Event.RetryFailed(), app.config.limits, yield* nowIso)
      yield* audit.log("task.retry", { command: retryCommand(task), to: next.to })
      yield* saveTransition(next, progress)
      return next.task
    }).pipe(inTask(task.id))

  const resume = (options: ResumeOptions = {}) =>
    Effect.gen(function*() {
      const retrying = options.retryFailed === true
      const id = yield* (retrying && options.task === undefined ? lastFailed : chooseTask(options.task))
      const handle = yield* launch(id, "resume", (saved, progress) =>
        Option.match(saved, {
          onNone: () => Effect.fail(new NoTaskToResume({ location: state.location })),
          onSome: (task) =>
            retrying
              ? retry(task, progress)
              : isTerminal(task)
              ? Effect.succeed(task)
              : Effect.as(audit.log("task.resume", { state: task.state, steps: task.steps }), task)
        }), options)
      return yield* awaitHandle(handle)
    })

  const plan = (prompt: string, options: RunOptions = {}) => {
    const id = crypto.randomUUID()
    return Effect.gen(function*() {
      const progress = toListener(options.onProgress)
      let task = newTask(id, prompt, yield* nowIso)
      // Only the states before a plan exists: nothing is drafted, confirmed or run, and nothing saved.
      const planning = (current: Task) =>
        current.paused === null && (current.state === "pending" || current.state === "planning" || current.state === "model_wait")
      while (planning(task)) {
        const { event, tokens } = yield* performCounted(task, progress, approver)
        task = transition({ ...task, tokens_used: task.tokens_used + tokens }, event, app.config.limits, yield* nowIso).task
      }
      const summary = task.graph === null || isTerminal(task) ? null : yield* summarize(task.graph, task.missing_skills)
      yield* audit.log("task.plan_only", {
        prompt,
        state: task.state,
        nodes: task.graph?.nodes.length ?? 0,
        drafts: task.missing_skills.map((skill) => skill.name),
        exec_skills: summary?.exec_skills ?? []
      })
      return { task, plan: summary } satisfies PlanPreview
    }).pipe(inTask(id), Effect.provide(context))
  }

  const task = (id?: string) =>
    Effect.gen(function*() {
      const chosen = yield* chooseTask(id)
      return yield* Effect.flatMap(state.load(chosen), Option.match({
        onNone: () => Effect.fail(new NoTaskToResume({ location: state.location })),
        onSome: Effect.succeed
      }))
    })

  const reset = (id?: string) =>
    Effect.gen(function*() {
      const chosen = yield* chooseTask(id)
      if (Option.isSome(yield* FiberMap.get(running, chosen).pipe(Effect.option))) {
        return yield* new TaskInProgress({ id: chosen, state: "running" })
      }
      return yield* Effect.scoped(Effect.gen(function*() {
        // Holding the lock proves no other process drives the task.
        yield* state.lock(chosen, "reset")
        const saved = yield* state.load(chosen).pipe(
          Effect.map(Option.map((t) => t.state)),
          Effect.catchTag("StateCorrupt", () => Effect.succeed(Option.none<string>()))
        )
        // Its approvals would otherwise wait for a task that is gone.
        const pending = (yield* approvals.listPending).filter((record) => record.task_id === chosen)
        for (const record of pending) yield* approvals.resolve(record.id, false, "its task was discarded with reset")
        yield* state.remove(chosen)
        yield* audit.log("task.reset", { state: Option.getOrNull(saved), rejected_approvals: pending.map((r) => r.id) })
        return { id: chosen, state: Option.getOrNull(saved), rejectedApprovals: pending.map((r) => r.id) } satisfies ResetOutcome
      })).pipe(inTask(chosen))
    })

  return Agent.of({ start, run, resume, plan, step, tasks: state.list, task, reset })
})

/** The agent over whatever layers the app provides for its services (the `Approver` among them). */
export const AgentLive = Layer.scoped(Agent, makeAgent)

/**
 * The agent's own services, live: the task store (file or Postgres, as `store` says), skills
 * (sandboxed), the runner and approvals. What is left to provide is the outside world:
 * `AppConfig`, `Audit`, `Llm`, `Luallm` and the platform's `FileSystem` and `Path`.
 */
export const AgentServicesLive = Layer.mergeAll(
  StateLive,
  ApprovalsLive,
  SkillRunnerLive.pipe(Layer.provideMerge(SkillsLive), Layer.provideMerge(SandboxLive))
)

/**
 * `Agent` with its live services, its questions for a human going to `approver` (which may use
 * them: `Approvals`, `SkillRunner`, …): `ApproverFrom(handler)`, `ApproverQueue`, the terminal.
 */
export const agentWithApprover = <E, R, Also = never>(approver: Layer.Layer<Approver | Also, E, R>) =>
  AgentLive.pipe(Layer.provideMerge(approver), Layer.provideMerge(AgentServicesLive))

/** `Agent` with its live services; a question for a human pauses the task (`ApproverPause`). */
export const AgentDefault = agentWithApprover(ApproverPause)
