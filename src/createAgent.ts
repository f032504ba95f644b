/**
 * The agent for apps that do not use Effect: `createAgent(options)` gives `run`, `plan`, `start`,
 * `resume`, `tasks`, `reset` and `close` as Promises, over the same live layers as the CLI (a
 * `ManagedRuntime` that `close` disposes). Tasks are named by id; several run at once (`start`
 * returns a handle with the id right away). Progress and approvals are plain callbacks; a
 * failure rejects the Promise with the tagged error itself (`error._tag`, `error.message`).
 *
 * `onApproval` is the app's human, the `Approver` of these tasks: it is asked to confirm each
 * task's plan (unless approval_tiers.task_confirmation is "auto"), to approve each drafted
 * skill (its record, code and tests; only a yes promotes it) and to grant `exec` to a skill that
 * runs commands, for that task only. `true` is yes and the task goes on in the same run; `false`
 * is no (a rejected draft fails the task, a declined plan or exec ends it `declined`). Without
 * `onApproval` a task pauses at each question, and `resume(id)` continues it once a human has
 * answered with the CLI.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, Data, Effect, Exit, Layer, ManagedRuntime } from "effect"
import {
  Agent,
  type AgentOutcome,
  agentWithApprover,
  type PlanPreview,
  type Progress,
  type ResetOutcome,
  type RunOptions,
  type TaskHandle
} from "./Agent.ts"
import { Answer, ApprovalCallbackFailed, ApproverFrom, ApproverPause, describeQuestion, type Question } from "./layers/Approver.ts"
import { AuditLive } from "./layers/Audit.ts"
import { AppConfigLive, type ConfigSettings } from "./layers/Config.ts"
import { type Llm, type LlmLayerError, type LlmLayerRequirements, LlmLive } from "./layers/Llm.ts"
import { HttpClientReplay } from "./layers/llm/cassette.ts"
import { LuallmLive } from "./layers/Luallm.ts"
import type { TaskList } from "./layers/State.ts"

/**
 * What `onApproval` is asked (`_tag` says which): `ConfirmPlan` { taskId, request, plan, tier },
 * `ApproveSkill` { taskId, approval, code, tests } (the tested copy, what promotion installs),
 * `GrantExec` { taskId, skill, nodes, tier }.
 */
export type ApprovalRequest = Question

export interface CreateAgentOptions {
  /**
   * A config file's path (like `--config`), or settings with a config file's keys (all or
   * some, e.g. `configInside(dir)`), laid over the defaults, the file and the environment.
   * Without it the configuration is found as the CLI finds it.
   */
  readonly config?: string | ConfigSettings
  /**
   * The model: an OpenAI-compatible server (`llm.base_url`, `llm.api_key`), or a recorded
   * session to replay (like `--llm replay:FILE`). Without it, `llm.base_url` from the
   * configuration, or the models started with luallm.
   */
  readonly llm?: { readonly baseUrl: string; readonly apiKey?: string } | { readonly replay: string }
  /**
   * The app's human: asked to confirm a plan, approve a drafted skill, or grant a skill `exec`
   * for one task; `true` is yes, `false` is no. Without it, a task pauses at each question.
   */
  readonly onApproval?: (request: ApprovalRequest) => boolean | Promise<boolean>
  /**
   * Transitions, nodes and LLM calls of every task as they happen. A callback that throws is
   * logged as a warning and the task goes on.
   */
  readonly onProgress?: (progress: Progress) => void
}

/** What `start` and `run` take besides the request. */
export interface StartOptions {
  /** This task's progress only, besides the agent's `onProgress`. */
  readonly onProgress?: (progress: Progress) => void
}

/** What `resume` takes besides the task's id. */
export interface ResumeTaskOptions extends StartOptions {
  /**
   * Retry a failed task (by default the most recent failed one): its failed nodes run again and
   * completed nodes keep their results; a task that failed before its graph ran is planned again.
   */
  readonly retryFailed?: boolean
}

/** A task running in the background. */
export interface PromiseTaskHandle {
  /** The task's id: `resume(id)`, `reset(id)` and `luallm-agent status --task ID` take it. */
  readonly id: string
  /** Resolves when the task finishes or pauses (`onApproval` answers its questions on the way). */
  readonly outcome: Promise<AgentOutcome>
  /** Stops the task; its last transition stays saved and `resume(id)` continues it. */
  readonly interrupt: () => Promise<void>
}

export interface PromiseAgent {
  /** Plans and runs a new task; resolves when it finishes or pauses. */
  readonly run: (prompt: string, options?: StartOptions) => Promise<AgentOutcome>
  /** Plans a request and resolves with the plan; nothing is saved, drafted or run (`run --plan-only`). */
  readonly plan: (prompt: string, options?: StartOptions) => Promise<PlanPreview>
  /** Starts a new task in the background and resolves with its handle at once; several run side by side. */
  readonly start: (prompt: string, options?: StartOptions) => Promise<PromiseTaskHandle>
  /**
   * Continues a saved task (its id or a prefix; by default the most recent unfinished one): after
   * an approval, a model that was down, or a crash; `{ retryFailed: true }` retries a failed one.
   */
  readonly resume: (id?: string, options?: ResumeTaskOptions) => Promise<AgentOutcome>
  /** The saved tasks, most recently updated first. */
  readonly tasks: () => Promise<TaskList>
  /** Discards a saved task (by default the most recent unfinished one) and rejects its pending approvals. */
  readonly reset: (id?: string) => Promise<ResetOutcome>
  /** Releases the agent's resources (open files, sandboxes); the agent cannot run after it. */
  readonly close: () => Promise<void>
}

export class AgentClosed extends Data.TaggedError("AgentClosed")<{ readonly method: string }> {
  override get message() {
    return `${this.method}() was called after close(); this agent's resources are released. Create another with createAgent(…).`
  }
}

/** The settings `createAgent` lays over the configuration: the app's, then the model's URL. */
const settingsFor = (options: CreateAgentOptions): ConfigSettings | undefined => {
  const fromApp = typeof options.config === "object" ? options.config : undefined
  if (options.llm === undefined || !("baseUrl" in options.llm)) return fromApp
  const { apiKey, baseUrl } = options.llm
  return { ...fromApp, llm: { ...fromApp?.llm, base_url: baseUrl, ...(apiKey === undefined ? {} : { api_key: apiKey }) } }
}

/** `onApproval` as the tasks' `Approver`: its answer, or `ApprovalCallbackFailed` when it throws or answers other than true/false. */
const approverFor = (onApproval: CreateAgentOptions["onApproval"]) =>
  onApproval === undefined ? ApproverPause : ApproverFrom((question) =>
    Effect.gen(function*() {
      const failed = (reason: string) => new ApprovalCallbackFailed({ question: describeQuestion(question), taskId: question.taskId, reason })
      const answer: unknown = yield* Effect.tryPromise({
        try: async () => onApproval(question),
        catch: (error) => failed(`it threw ${error instanceof Error ? error.message : String(error)}`)
      })
      if (typeof answer !== "boolean") return yield* failed(`it returned ${JSON.stringify(answer) ?? String(answer)}, not true or false`)
      const by = "the app (onApproval)"
      return answer ? Answer.Yes({ by }) : Answer.No({ by, reason: "" })
    }))

const layerFor = (options: CreateAgentOptions) => {
  const llm: Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> = options.llm !== undefined && "replay" in options.llm
    ? LlmLive.pipe(Layer.provide(HttpClientReplay(options.llm.replay)))
    : LlmLive
  const configPath = typeof options.config === "string" ? options.config : undefined
  return agentWithApprover(approverFor(options.onApproval)).pipe(
    Layer.provideMerge(llm),
    Layer.provideMerge(LuallmLive),
    Layer.provideMerge(AuditLive),
    Layer.provideMerge(AppConfigLive({ configPath, settings: settingsFor(options) })),
    Layer.provideMerge(NodeHttpClient.layer),
    Layer.provideMerge(NodeContext.layer)
  )
}

export const createAgent = (options: CreateAgentOptions = {}): PromiseAgent => {
  const runtime = ManagedRuntime.make(layerFor(options))
  /** The agent's `onProgress` and the task's own, as the Effect API's plain callback. */
  const runOptions = (start: StartOptions | undefined): RunOptions => {
    const listeners = [options.onProgress, start?.onProgress].filter((listener) => listener !== undefined)
    return listeners.length === 0 ? {} : { onProgress: (progress) => listeners.forEach((listener) => listener(progress)) }
  }

  const startTask = (prompt: string, start: StartOptions | undefined) =>
    Effect.flatMap(Agent, (agent) => agent.start(prompt, runOptions(start)))

  let closed = false
  /** Runs on the agent's runtime; a failure rejects with the tagged error itself, not a wrapper. */
  const toPromise = <A>(method: string, effect: Effect.Effect<A, unknown, ManagedRuntime.ManagedRuntime.Context<typeof runtime>>) =>
    closed
      ? Promise.reject(new AgentClosed({ method }))
      : runtime.runPromiseExit(effect).then((exit) => Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause)))

  /** A handle's outcome as a Promise, on the agent's runtime. */
  const promiseHandle = (handle: TaskHandle): PromiseTaskHandle => {
    const outcome = toPromise("start", handle.await)
    // An app that only starts (or interrupts) a task need not await it: no unhandled rejection.
    outcome.catch(() => undefined)
    return { id: handle.id, outcome, interrupt: () => toPromise("interrupt", handle.interrupt) }
  }

  return {
    run: (prompt, start) =>
      toPromise("run", Effect.flatMap(startTask(prompt, start), (handle) =>
        // Interrupting the run (closing the agent) stops its task, as the Effect API's `run` does.
        Effect.onInterrupt(handle.await, () => handle.interrupt))),
    plan: (prompt, start) => toPromise("plan", Effect.flatMap(Agent, (agent) => agent.plan(prompt, runOptions(start)))),
    start: (prompt, start) => toPromise("start", Effect.map(startTask(prompt, start), (handle) => promiseHandle(handle))),
    resume: (id, start) =>
      toPromise("resume", Effect.flatMap(Agent, (agent) => agent.resume({ ...runOptions(start), task: id, retryFailed: start?.retryFailed === true }))),
    tasks: () => toPromise("tasks", Effect.flatMap(Agent, (agent) => agent.tasks)),
    reset: (id) => toPromise("reset", Effect.flatMap(Agent, (agent) => agent.reset(id))),
    close: () => {
      closed = true
      return runtime.dispose()
    }
  }
}
