/**
 * The agent for apps that do not use Effect: `createAgent(options)` gives `run`, `resume` and
 * `close` as Promises, over the same live layers as the CLI (a `ManagedRuntime` that `close`
 * disposes). Progress and approvals are plain callbacks; a failure rejects the Promise with
 * the tagged error itself (`error._tag`, `error.message`).
 *
 * Only a human's yes promotes a drafted skill: `onApproval` is the app's human. When a task
 * pauses for an approval, the callback gets the draft's record, code and tests; `true` records
 * the yes (as `luallm-agent approvals approve` does) and the resumed task promotes the draft,
 * `false` records the no and the task fails with it. Without `onApproval` the task stays
 * paused, for a human to decide with the CLI, and `resume()` continues it.
 */
import { FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, Data, Effect, Exit, Layer, ManagedRuntime } from "effect"
import { Agent, AgentDefault, type AgentError, type AgentOutcome, type AgentShape, type Progress, type RunOptions } from "./Agent.ts"
import type { Task } from "./core/task.ts"
import { ApprovalIoError, type ApprovalRecord, Approvals } from "./layers/Approvals.ts"
import { AuditLive } from "./layers/Audit.ts"
import { AppConfigLive, type ConfigSettings } from "./layers/Config.ts"
import { type Llm, type LlmLayerError, type LlmLayerRequirements, LlmLive } from "./layers/Llm.ts"
import { HttpClientReplay } from "./layers/llm/cassette.ts"
import { LuallmLive } from "./layers/Luallm.ts"

/** What `onApproval` is asked to decide: a drafted skill whose tests pass. */
export interface ApprovalRequest {
  /** The record: skill name and version, declared paths and capabilities, test results. */
  readonly approval: ApprovalRecord
  /** The draft's code and its tests, as they were tested. */
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
  /** Transitions, nodes and LLM calls as they happen. A callback that throws stops the run (the task stays saved). */
  readonly onProgress?: (progress: Progress) => void
}

export interface PromiseAgent {
  /** Plans and runs a task; resolves when it finishes or pauses. */
  readonly run: (prompt: string) => Promise<AgentOutcome>
  /** Continues the saved task: after an approval, a model start, or a crash. */
  readonly resume: () => Promise<AgentOutcome>
  /** Releases the agent's resources (open files, sandboxes); the agent cannot run after it. */
  readonly close: () => Promise<void>
}

export class ApprovalCallbackFailed extends Data.TaggedError("ApprovalCallbackFailed")<{
  readonly skill: string
  readonly approvalId: string
  readonly reason: string
}> {
  override get message() {
    return `onApproval failed for skill ${this.skill} (approval ${this.approvalId.slice(0, 8)}): ${this.reason}. Nothing was approved or rejected and the task stays paused; fix the callback so it returns true or false, then call resume().`
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
  const { onApproval, onProgress } = options
  const runOptions: RunOptions = onProgress === undefined ? {} : { onProgress: (progress) => Effect.sync(() => onProgress(progress)) }

  /** Asks the app's human about one pending draft and records the answer. */
  const decide = (approvalId: string, ask: NonNullable<CreateAgentOptions["onApproval"]>) =>
    Effect.gen(function*() {
      const approvals = yield* Approvals
      const fs = yield* FileSystem.FileSystem
      const approval = yield* approvals.get(approvalId)
      const read = (path: string) => fs.readFileString(path).pipe(Effect.mapError((error) => new ApprovalIoError({ path, reason: error.message })))
      const request: ApprovalRequest = { approval, code: yield* read(approval.code_path), tests: yield* read(approval.test_path) }
      const failed = (reason: string) => new ApprovalCallbackFailed({ skill: approval.skill_name, approvalId: approval.id, reason })
      const answer: unknown = yield* Effect.tryPromise({
        try: async () => ask(request),
        catch: (error) => failed(`it threw ${error instanceof Error ? error.message : String(error)}`)
      })
      if (typeof answer !== "boolean") return yield* failed(`it returned ${JSON.stringify(answer) ?? String(answer)}, not true or false`)
      // The agent promotes an approved draft when it resumes, as after `approvals approve`.
      yield* approvals.resolve(approval.id, answer, answer ? "approved by the app (onApproval)" : "rejected by the app (onApproval)")
    })

  /** Drives the task, asking `onApproval` each time it pauses for a pending draft. */
  const drive = (start: (agent: AgentShape) => Effect.Effect<AgentOutcome, AgentError>) =>
    Effect.gen(function*() {
      const agent = yield* Agent
      const approvals = yield* Approvals
      let outcome = yield* start(agent)
      for (;;) {
        const approvalId = awaitedApproval(outcome.task)
        if (onApproval === undefined || approvalId === null) return outcome
        if ((yield* approvals.get(approvalId)).status !== "pending") return outcome
        yield* decide(approvalId, onApproval)
        outcome = yield* agent.resume(runOptions)
      }
    })

  let closed = false
  /** Runs on the agent's runtime; a failure rejects with the tagged error itself, not a wrapper. */
  const toPromise = <A>(method: string, effect: Effect.Effect<A, unknown, ManagedRuntime.ManagedRuntime.Context<typeof runtime>>) =>
    closed
      ? Promise.reject(new AgentClosed({ method }))
      : runtime.runPromiseExit(effect).then((exit) => Exit.isSuccess(exit) ? exit.value : Promise.reject(Cause.squash(exit.cause)))

  return {
    run: (prompt) => toPromise("run", drive((agent) => agent.run(prompt, runOptions))),
    resume: () => toPromise("resume", drive((agent) => agent.resume(runOptions))),
    close: () => {
      closed = true
      return runtime.dispose()
    }
  }
}
