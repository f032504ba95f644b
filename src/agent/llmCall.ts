/**
 * Every LLM call the agent makes goes through `askModel`. It fits the prompt into the model's
 * context (shortening the skill catalogue, then node inputs and earlier feedback, step by step,
 * and failing with one sentence when nothing fits: never an HTTP 400), keeps the task within
 * `limits.max_task_tokens`, sends the call with the task as its affinity (same endpoint and slot,
 * where the server's prompt cache has the task's prefix), audits `llm.call` with the model,
 * purpose, latency, tokens and the server's timings (what `stats` reads), and reports the call
 * to the progress listener.
 */
import { Context, Effect, Option } from "effect"
import { describeShrink, type PromptShrink, shrinkSteps } from "../core/prompts.ts"
import { Audit } from "../layers/Audit.ts"
import { AppConfig } from "../layers/Config.ts"
import {
  type ChatMessage,
  type Completion,
  type CompletionRequest,
  Llm,
  LlmContextOverflow,
  type OutputSchema,
  type PromptSize,
  TaskTokenBudgetExceeded
} from "../layers/Llm.ts"
import type { ProgressListener } from "./progress.ts"

/** What a call is for, in the audit log. */
export type CallPurpose = "plan" | "skill.draft" | "skill.test" | "skill.rework" | "node"

/** The `llm.max_tokens` entry of each purpose. */
const answerKind = (purpose: CallPurpose): "plan" | "code" | "node" =>
  purpose === "plan" ? "plan" : purpose === "node" ? "node" : "code"

export interface ModelRequest {
  readonly purpose: CallPurpose
  readonly model: string
  /** The task the call is part of: its affinity and its token budget. */
  readonly taskId: string
  /** The call's prompt at a shrink step; the first step keeps everything. */
  readonly prompt: (shrink: PromptShrink) => { readonly system: string; readonly user: string }
  readonly temperature?: number
  /** The JSON schema the answer must match, when it is structured. */
  readonly output?: OutputSchema
  readonly nodeId?: string
}

/** The tokens a task has used, for `limits.max_task_tokens`: the Agent provides it around each step. */
export class TaskTokens extends Context.Tag("TaskTokens")<TaskTokens, {
  /** Tokens used so far, this step's calls included. */
  readonly used: Effect.Effect<number>
  readonly add: (tokens: number) => Effect.Effect<void>
}>() {}

/** An answer may be cut to what is left of the context, but not below this share of max_tokens. */
const SMALLEST_ANSWER_SHARE = 4

const toMessages = (prompt: { readonly system: string; readonly user: string }): ReadonlyArray<ChatMessage> => [
  { role: "system", content: prompt.system },
  { role: "user", content: prompt.user }
]

const sameMessages = (a: ReadonlyArray<ChatMessage>, b: ReadonlyArray<ChatMessage>) =>
  a.length === b.length && a.every((message, i) => message.content === b[i]?.content)

interface Fitted {
  readonly request: CompletionRequest
  readonly size: PromptSize
  readonly shrink: PromptShrink
}

/** The first shrink step whose prompt leaves room for an answer, with `max_tokens` cut to that room. */
const fitToContext = (request: ModelRequest, maxTokens: number) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const smallest = Math.ceil(maxTokens / SMALLEST_ANSWER_SHARE)
    let previous: ReadonlyArray<ChatMessage> = []
    let last: Fitted | undefined
    for (const shrink of shrinkSteps) {
      const messages = toMessages(request.prompt(shrink))
      if (last !== undefined && sameMessages(messages, previous)) continue
      previous = messages
      const base: CompletionRequest = {
        model: request.model,
        messages,
        affinity: request.taskId,
        ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
        ...(request.output === undefined ? {} : { output: request.output })
      }
      const size = yield* llm.measure({ ...base, max_tokens: maxTokens })
      const room = size.context === null ? maxTokens : size.context - size.tokens
      last = { request: { ...base, max_tokens: Math.max(1, Math.min(maxTokens, room)) }, size, shrink }
      if (room >= smallest) return last
    }
    const size = last?.size ?? { tokens: 0, exact: false, context: 0 }
    return yield* new LlmContextOverflow({
      model: request.model,
      purpose: request.purpose,
      promptTokens: size.tokens,
      exact: size.exact,
      answerTokens: smallest,
      contextTokens: size.context ?? 0,
      shortened: last === undefined ? [] : describeShrink(last.shrink)
    })
  })

export const askModel = (request: ModelRequest, progress: ProgressListener) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const audit = yield* Audit
    const { config } = yield* AppConfig
    const budget = yield* Effect.serviceOption(TaskTokens)
    const fitted = yield* fitToContext(request, config.llm.max_tokens[answerKind(request.purpose)])
    const next = fitted.size.tokens + (fitted.request.max_tokens ?? 0)
    if (Option.isSome(budget)) {
      const used = yield* budget.value.used
      if (used + next > config.limits.max_task_tokens) {
        return yield* new TaskTokenBudgetExceeded({ used, next, limit: config.limits.max_task_tokens, purpose: request.purpose })
      }
    }
    const completion: Completion = yield* llm.complete(fitted.request).pipe(
      Effect.tapError((error) =>
        audit.log("llm.error", { purpose: request.purpose, model: request.model, node: request.nodeId ?? null, error: error._tag })
      )
    )
    const { usage } = completion
    // A server that reports no usage still spent tokens: count the estimate.
    const spent = usage.prompt_tokens + usage.completion_tokens > 0
      ? usage.prompt_tokens + usage.completion_tokens
      : fitted.size.tokens + Math.ceil(completion.content.length / 3)
    if (Option.isSome(budget)) yield* budget.value.add(spent)
    yield* audit.log("llm.call", {
      purpose: request.purpose,
      model: completion.model,
      node: request.nodeId ?? null,
      duration_ms: completion.latency_ms,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      endpoint: completion.endpoint,
      constrained: completion.constrained,
      max_tokens: fitted.request.max_tokens ?? null,
      shortened: describeShrink(fitted.shrink),
      timings: completion.timings
    })
    yield* progress({
      _tag: "LlmCall",
      purpose: request.purpose,
      model: completion.model,
      latencyMs: completion.latency_ms,
      tokens: usage.prompt_tokens + usage.completion_tokens
    })
    return completion
  })
