/**
 * The agent for apps that do not use Effect: `createAgent(options)` gives `run`, `start`,
 * `resume`, `tasks`, `reset` and `close` as Promises, over the same live layers as the CLI (a
 * `ManagedRuntime` that `close` disposes). Tasks are named by id; several run at once (`start`
 * returns a handle with the id right away). Progress and approvals are plain callbacks; a
 * failure rejects the Promise with the tagged error itself (`error._tag`, `error.message`).
 *
 * Only a human's yes promotes a drafted skill: `onApproval` is the app's human. When a task
 * pauses for an approval, the callback gets the draft's record, code and tests; `true` records
 * the yes (as `luallm-agent approvals approve` does) and the resumed task promotes the draft,
 * `false` records the no and the task fails with it. Without `onApproval` the task stays
 * paused, for a human to decide with the CLI, and `resume(id)` continues it.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, Data, Effect, Exit, Layer, ManagedRuntime } from "effect"
import {
  Agent,
  AgentDefault,
  type AgentError,
  type AgentOutcome,
  type Progress,
  type ResetOutcome,
  type RunOptions,
  type TaskHandle
} from "./Agent.ts"
import type { Task } from "./core/task.ts"
import { type ApprovalRecord, Approvals } from "./layers/Approvals.ts"
import { AuditLive } from "./layers/Audit.ts"
import { AppConfigLive, type ConfigSettings } from "./layers/Config.ts"
import { type Llm, type LlmLayerError, type LlmLayerRequirements, LlmLive } from "./layers/Llm.ts"
import { HttpClientReplay } from "./layers/llm/cassette.ts"
import { LuallmLive } from "./layers/Luallm.ts"
import type { TaskList } from "./layers/State.ts"

/** What `onApproval` is asked to decide: a drafted skill whose tests pass. */
export interface ApprovalRequest {
  /** The record: skill name and version, declared paths and capabilities, test results. */
  readonly approval: ApprovalRecord
  /** The draft's code and its tests, as they were tested (the copy that promotion installs). */
  readonly code: string
  readonly tests: string
}

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
  /** The app's human: `true` approves and promotes the draft, `false` rejects it. */
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
  /** Resolves when the task finishes or pauses (after `onApproval` answered for it). */
  readonly outcome: Promise<AgentOutcome>
  /** Stops the task; its last transition stays saved and `resume(id)` continues it. */
  readonly interrupt: () => Promise<void>
}

export interface PromiseAgent {
  /** Plans and runs a new task; resolves when it finishes or pauses. */
  readonly run: (prompt: string, options?: StartOptions) => Promise<AgentOutcome>
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

export class ApprovalCallbackFailed extends Data.TaggedError("ApprovalCallbackFailed")<{
  readonly skill: string
  readonly approvalId: string
  readonly taskId: string
  readonly reason: string
}> {
  override get message() {
    return `onApproval failed for skill ${this.skill} (approval ${this.approvalId.slice(0, 8)}): ${this.reason}. Nothing was approved or rejected and task ${this.taskId.slice(0, 8)} stays paused; fix the callback so it returns true or false, then call resume("${this.taskId.slice(0, 8)}").`
  }
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

const layerFor = (options: CreateAgentOptions) => {
  const llm: Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> = options.llm !== undefined && "replay" in options.llm
    ? LlmLive.pipe(Layer.provide(HttpClientReplay(options.llm.replay)))
    : LlmLive
  const configPath = typeof options.config === "string" ? options.config : undefined
  return AgentDefault.pipe(
    Layer.provideMerge(llm),
    Layer.provideMerge(LuallmLive),
    Layer.provideMerge(AuditLive),
    Layer.provideMerge(AppConfigLive({ configPath, settings: settingsFor(options) })),
    Layer.provideMerge(NodeHttpClient.layer),
    Layer.provideMerge(NodeContext.layer)
  )
}

/** The approval a task waits for, if it is paused for one. */
const awaitedApproval = (task: Task): string | null =>
  task.state === "approval" && task.paused?.reason === "approval" ? task.draft?.approval_id ?? null : null

export const createAgent = (options: CreateAgentOptions = {}): PromiseAgent => {
  const runtime = ManagedRuntime.make(layerFor(options))
  const { onApproval } = options
  /** The agent's `onProgress` and the task's own, as the Effect API's plain callback. */
  const runOptions = (start: StartOptions | undefined): RunOptions => {
    const listeners = [options.onProgress, start?.onProgress].filter((listener) => listener !== undefined)
    return listeners.length === 0 ? {} : { onProgress: (progress) => listeners.forEach((listener) => listener(progress)) }
  }

  /** Asks the app's human about one pending draft and records the answer. */
  const decide = (task: Task, approvalId: string, ask: NonNullable<CreateAgentOptions["onApproval"]>) =>
    Effect.gen(function*() {
      const approvals = yield* Approvals
      const approval = yield* approvals.get(approvalId)
      // What the human reads is what promotion installs: the tested copy, checked against its hashes.
      const copy = yield* approvals.tested(approval)
      const request: ApprovalRequest = { approval, code: copy.code, tests: copy.tests }
      const failed = (reason: string) => new ApprovalCallbackFailed({ skill: approval.skill_name, approvalId: approval.id, taskId: task.id, reason })
      const answer: unknown = yield* Effect.tryPromise({
        try: async () => ask(request),
        catch: (error) => failed(`it threw ${error instanceof Error ? error.message : String(error)}`)
      })
      if (typeof answer !== "boolean") return yield* failed(`it returned ${JSON.stringify(answer) ?? String(answer)}, not true or false`)
      // The agent promotes an approved draft when it resumes, as after `approvals approve`.
      yield* approvals.resolve(approval.id, answer, answer ? "approved by the app (onApproval)" : "rejected by the app (onApproval)")
    })

  /** Follows one task to its end or pause, asking `onApproval` each time it pauses for a pending draft of its own. */
  const follow = (first: Effect.Effect<AgentOutcome, AgentError>, run: RunOptions) =>
    Effect.gen(function*() {
      const agent = yield* Agent
      const approvals = yield* Approvals
      let outcome = yield* first
      for (;;) {
        const approvalId = awaitedApproval(outcome.task)
        if (onApproval === undefined || approvalId === null) return outcome
        if ((yield* approvals.get(approvalId)).status !== "pending") return outcome
        yield* decide(outcome.task, approvalId, onApproval)
        // Only this task goes on: others paused for their own drafts are theirs to follow.
        outcome = yield* agent.resume({ ...run, task: outcome.task.id })
      }
    })

  const startTask = (prompt: string, start: StartOptions | undefined) =>
    Effect.flatMap(Agent, (agent) => agent.start(prompt, runOptions(start)))

  let closed = false
  /** Runs on the agent's runtime; a failure rejects with the tagged error itself, not a wrapper. */
  const toPromise = <A>(method: string, effect: Effect.Effect<A, unknown, ManagedRuntime.ManagedRuntime.Context<typeof runtime>>) =>
    closed
      ? Promise.reject(new AgentClosed({ method }))
      : runtime.runPromiseExit(effect).then((exit) => Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause)))

  /** A handle's outcome as a Promise, on the agent's runtime. */
  const promiseHandle = (handle: TaskHandle, start: StartOptions | undefined): PromiseTaskHandle => {
    const outcome = toPromise("start", follow(handle.await, runOptions(start)))
    // An app that only starts (or interrupts) a task need not await it: no unhandled rejection.
    outcome.catch(() => undefined)
    return { id: handle.id, outcome, interrupt: () => toPromise("interrupt", handle.interrupt) }
  }

  return {
    run: (prompt, start) =>
      toPromise("run", Effect.flatMap(startTask(prompt, start), (handle) =>
        // Interrupting the run (closing the agent) stops its task, as the Effect API's `run` does.
        follow(Effect.onInterrupt(handle.await, () => handle.interrupt), runOptions(start)))),
    start: (prompt, start) => toPromise("start", Effect.map(startTask(prompt, start), (handle) => promiseHandle(handle, start))),
    resume: (id, start) =>
      toPromise(
        "resume",
        Effect.flatMap(Agent, (agent) => follow(agent.resume({ ...runOptions(start), task: id, retryFailed: start?.retryFailed === true }), runOptions(start)))
      ),
    tasks: () => toPromise("tasks", Effect.flatMap(Agent, (agent) => agent.tasks)),
    reset: (id) => toPromise("reset", Effect.flatMap(Agent, (agent) => agent.reset(id))),
    close: () => {
      closed = true
      return runtime.dispose()
    }
  }
}
