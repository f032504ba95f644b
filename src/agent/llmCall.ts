/**
 * Every LLM call the agent makes goes through `askModel`: it sends the request, audits
 * `llm.call` with the model, purpose, latency and tokens (what `stats` reads), and reports the
 * call to the progress listener.
 */
import { Effect } from "effect"
import { Audit } from "../layers/Audit.ts"
import { type ChatMessage, type Completion, Llm } from "../layers/Llm.ts"
import type { ProgressListener } from "./progress.ts"

export interface ModelRequest {
  /** What the call is for, in the audit log: `plan`, `skill.draft`, `skill.test`, `skill.rework`, `node`. */
  readonly purpose: string
  readonly model: string
  readonly system: string
  readonly user: string
  readonly temperature?: number
  readonly nodeId?: string
}

export const askModel = (request: ModelRequest, progress: ProgressListener) =>
  Effect.gen(function*() {
    const llm = yield* Llm
    const audit = yield* Audit
    const messages: ReadonlyArray<ChatMessage> = [
      { role: "system", content: request.system },
      { role: "user", content: request.user }
    ]
    const completion: Completion = yield* llm.complete({
      model: request.model,
      messages,
      ...(request.temperature === undefined ? {} : { temperature: request.temperature })
    }).pipe(
      Effect.tapError((error) =>
        audit.log("llm.error", { purpose: request.purpose, model: request.model, node: request.nodeId ?? null, error: error._tag })
      )
    )
    yield* audit.log("llm.call", {
      purpose: request.purpose,
      model: completion.model,
      node: request.nodeId ?? null,
      duration_ms: completion.latency_ms,
      prompt_tokens: completion.usage.prompt_tokens,
      completion_tokens: completion.usage.completion_tokens
    })
    yield* progress({
      _tag: "LlmCall",
      purpose: request.purpose,
      model: completion.model,
      latencyMs: completion.latency_ms,
      tokens: completion.usage.prompt_tokens + completion.usage.completion_tokens
    })
    return completion
  })
