/**
 * The `Agent` service: the orchestrator other Effect apps embed.
 *
 * `run(prompt)` creates a task and drives it; `resume()` continues the saved one (after a pause
 * for an approval or a model, or after a crash); `step(task)` performs exactly one transition.
 * The transition logic is pure (`core/taskMachine.ts`); this file only performs the command the
 * current state asks for, then saves and audits the new task, after every transition.
 */
import type { FileSystem, Path } from "@effect/platform"
import { Clock, Context, Data, Effect, Layer, Option, Ref } from "effect"
import { isTerminal, newTask, type Pause, type Task } from "./core/task.ts"
import { Command, commandFor, Event, transition } from "./core/taskMachine.ts"
import { checkApproval, type DraftWriteError, requestApproval, testDraft, writeDraft } from "./agent/drafting.ts"
import { execute } from "./agent/execution.ts"
import { TaskTokens } from "./agent/llmCall.ts"
import { canStartModels, ensureModel, plan } from "./agent/planning.ts"
import { type ProgressListener, silent } from "./agent/progress.ts"
import { type ApprovalError, type Approvals, ApprovalsLive } from "./layers/Approvals.ts"
import { Audit, type AuditWriteError } from "./layers/Audit.ts"
import { AppConfig } from "./layers/Config.ts"
import type { Llm, LlmError } from "./layers/Llm.ts"
import type { Luallm, ModelNotReady } from "./layers/Luallm.ts"
import { SandboxLive } from "./layers/Sandbox.ts"
import { type SkillRunner, SkillRunnerLive } from "./layers/SkillRunner.ts"
import { type SkillLoadError, type Skills, SkillsLive } from "./layers/Skills.ts"
import { State, type StateCorrupt, type StateIoError, type StateLocked, StateLive } from "./layers/State.ts"

export type { Progress, ProgressListener } from "./agent/progress.ts"

export class TaskInProgress extends Data.TaggedError("TaskInProgress")<{ readonly id: string; readonly state: string }> {
  override get message() {
    return `A task (${this.id.slice(0, 8)}, in state ${this.state}) is already saved and not finished. Continue it with \`luallm-agent resume\`, or discard it with \`luallm-agent reset\`.`
  }
}

export class NoTaskToResume extends Data.TaggedError("NoTaskToResume")<{ readonly stateDir: string }> {
  override get message() {
    return `There is no saved task in ${this.stateDir}. Start one with \`luallm-agent run "<request>"\`.`
  }
}

export interface RunOptions {
  /** Receives transitions, node changes and LLM calls as they happen. */
  readonly onProgress?: ProgressListener
}

/** Where a drive stopped: finished (complete or failed), or paused with the command that continues. */
export interface AgentOutcome {
  readonly task: Task
  readonly paused: Pause | null
}

/** Everything the agent can fail with; a failed *task* is not an error but an outcome. */
export type AgentError =
  | TaskInProgress
  | NoTaskToResume
  | StateIoError
  | StateCorrupt
  | StateLocked
  | AuditWriteError
  | LlmError
  | ModelNotReady
  | SkillLoadError
  | ApprovalError
  | DraftWriteError

export interface AgentShape {
  /** Creates a task for `prompt` and drives it until it finishes or pauses. */
  readonly run: (prompt: string, options?: RunOptions) => Effect.Effect<AgentOutcome, AgentError>
  /** Continues the saved task: after an approval, a model start, or a crash. */
  readonly resume: (options?: RunOptions) => Effect.Effect<AgentOutcome, AgentError>
  /** Performs the current state's command and one transition; saves and audits it. */
  readonly step: (task: Task, options?: RunOptions) => Effect.Effect<Task, AgentError>
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
  | FileSystem.FileSystem
  | Path.Path

const nowIso = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

/** Performs what the task's state asks for; the world's answer is an `Event`. */
const perform = (task: Task, progress: ProgressListener) => {
  const command = commandFor(task)
  return Command.$match(command, {
    EnsureModel: () => ensureModel(task),
    Plan: ({ attempt, feedback }) => plan(task, attempt, feedback, progress),
    DraftSkill: ({ draft }) => writeDraft(task, draft, false, progress),
    ReworkSkill: ({ draft }) => writeDraft(task, draft, true, progress),
    TestSkill: ({ draft }) => testDraft(draft),
    RequestApproval: ({ draft }) => requestApproval(task, draft),
    CheckApproval: ({ approvalId }) => checkApproval(approvalId),
    ExecuteGraph: ({ graph }) => execute(task, graph, progress),
    Finished: () => Effect.dieMessage(`step() called on a finished task (${task.state})`)
  })
}

export class Agent extends Context.Tag("Agent")<Agent, AgentShape>() {}

export const makeAgent = Effect.gen(function*() {
  const context = yield* Effect.context<StepServices>()
  const state = yield* State
  const audit = yield* Audit
  const app = yield* AppConfig

  const step = (task: Task, options: RunOptions = {}) =>
    Effect.gen(function*() {
      const progress = options.onProgress ?? silent
      const spent = yield* Ref.make(0)
      const tokens = TaskTokens.of({ used: Effect.map(Ref.get(spent), (n) => task.tokens_used + n), add: (n) => Ref.update(spent, (s) => s + n) })
      // A model that stopped mid-task pauses the task in model_wait, like one missing at the start.
      const event = yield* perform(task, progress).pipe(
        Effect.provideService(TaskTokens, tokens),
        Effect.catchTag("ModelNotRunning", (error) =>
          Effect.map(canStartModels, (autoStart): Event =>
            Event.ModelMissing({ model: error.model, startCommand: error.startCommand, autoStart })))
      )
      // A graph run saved its progress as it went; the transition starts from that.
      const base = event._tag === "GraphFinished" ? { ...task, graph: event.graph } : task
      const next = transition({ ...base, tokens_used: task.tokens_used + (yield* Ref.get(spent)) }, event, app.config.limits, yield* nowIso)
      yield* state.save(next.task)
      // Re-checking a pending approval changes nothing worth a line in the log.
      if (event._tag !== "ApprovalPending") {
        yield* audit.log("task.transition", {
          from: next.from,
          to: next.to,
          reason: next.reason,
          step: next.task.steps,
          skill: next.task.draft?.skill.name ?? null
        })
        yield* progress({ _tag: "Transition", from: next.from, to: next.to, reason: next.reason })
      }
      return next.task
    }).pipe(Effect.provide(context))

  /** Steps until the task finishes or pauses. */
  const drive = (start: Task, options: RunOptions) =>
    Effect.gen(function*() {
      let task = start
      // A paused task is retried once per drive: the first step re-checks what it waited for.
      let first = true
      while (!isTerminal(task) && (first || task.paused === null)) {
        task = yield* step(task, options)
        first = false
      }
      if (isTerminal(task)) {
        yield* audit.log(task.state === "complete" ? "task.complete" : "task.failed", {
          steps: task.steps,
          ...(task.error === null ? {} : { error: task.error })
        })
      } else if (task.paused !== null) {
        yield* audit.log("task.paused", { reason: task.paused.reason, next: task.paused.next_command })
      }
      return { task, paused: task.paused }
    })

  const withLock = <A, E, R>(command: string, effect: Effect.Effect<A, E, R>) =>
    Effect.scoped(Effect.zipRight(state.lock(command), effect))

  const run = (prompt: string, options: RunOptions = {}) =>
    withLock(
      "run",
      Effect.gen(function*() {
        const saved = yield* state.load
        if (Option.isSome(saved) && !isTerminal(saved.value)) {
          return yield* new TaskInProgress({ id: saved.value.id, state: saved.value.state })
        }
        const task = newTask(crypto.randomUUID(), prompt, yield* nowIso)
        yield* audit.setTaskId(task.id)
        yield* state.save(task)
        yield* audit.log("task.start", { prompt })
        return yield* drive(task, options)
      })
    )

  const resume = (options: RunOptions = {}) =>
    withLock(
      "resume",
      Effect.gen(function*() {
        const saved = yield* state.load
        if (Option.isNone(saved)) return yield* new NoTaskToResume({ stateDir: app.config.state_dir })
        const task = saved.value
        yield* audit.setTaskId(task.id)
        if (isTerminal(task)) return { task, paused: null }
        yield* audit.log("task.resume", { state: task.state, steps: task.steps })
        return yield* drive(task, options)
      })
    )

  return Agent.of({ run, resume, step })
})

/** The agent over whatever layers the app provides for its services. */
export const AgentLive = Layer.effect(Agent, makeAgent)

/**
 * The agent's own services, live: state, skills (sandboxed), the runner and approvals. What
 * is left to provide is the outside world: `AppConfig`, `Audit`, `Llm`, `Luallm` and the
 * platform's `FileSystem` and `Path`.
 */
export const AgentServicesLive = Layer.mergeAll(
  StateLive,
  ApprovalsLive,
  SkillRunnerLive.pipe(Layer.provideMerge(SkillsLive), Layer.provideMerge(SandboxLive))
)

/** `Agent` with its live services. */
export const AgentDefault = AgentLive.pipe(Layer.provideMerge(AgentServicesLive))
