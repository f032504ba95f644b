/**
 * How a call to the model fails, each with the facts a human needs and what to do next. The
 * Live layer raises the HTTP ones; `askModel` (src/agent/llmCall.ts) raises the two budget
 * ones before a call is sent.
 */
import { Data } from "effect"

const trimmed = (text: string, max = 120): string => (text.length > max ? `${text.slice(0, max)}…` : text)

const tries = (attempts: number): string => (attempts > 1 ? ` (${attempts} attempts)` : "")

export class LlmUnreachable extends Data.TaggedError("LlmUnreachable")<{
  readonly url: string
  readonly reason: string
  readonly attempts: number
  readonly startCommand: string
}> {
  override get message() {
    return `Could not reach the LLM at ${this.url}: ${this.reason}${tries(this.attempts)}. Start the model with \`${this.startCommand}\`, or check llm.base_url / llm.endpoints (LUALLM_AGENT_LLM_BASE_URL).`
  }
}

export class LlmTimeout extends Data.TaggedError("LlmTimeout")<{
  readonly url: string
  /** `idle`: nothing arrived for `seconds`; `total`: the whole call took longer than `seconds`. */
  readonly limit: "idle" | "total"
  readonly seconds: number
}> {
  override get message() {
    return this.limit === "idle"
      ? `The LLM at ${this.url} sent nothing for ${this.seconds}s (limits.llm_timeout_seconds, the longest silence allowed). A long prompt on a slow machine can need more before the first token: raise limits.llm_timeout_seconds (LUALLM_AGENT_LIMITS_LLM_TIMEOUT_SECONDS), or use a smaller model.`
      : `The LLM at ${this.url} was still answering after ${this.seconds}s (limits.llm_call_max_seconds, the longest a call may take). Ask for less, lower llm.max_tokens, or raise limits.llm_call_max_seconds.`
  }
}

const contextWords = /context|too long|exceeds|n_ctx|token limit/i

const httpHint = (status: number, body: string, retryAfter: number | null): string => {
  const waited = retryAfter === null ? "" : ` (it asked to wait ${retryAfter}s)`
  if (status === 401 || status === 403) return "Check llm.api_key (LUALLM_AGENT_LLM_API_KEY)."
  if (status === 404) return "Check that llm.base_url points at an OpenAI-compatible server: the path was not found."
  if (status === 429) {
    return `The server is busy or rate-limiting requests${waited}; it was asked again, waiting as it said, up to llm.max_retries times and at most llm.retry_max_seconds each. Try again later, raise llm.max_retries, or give llama-server more slots (--parallel).`
  }
  if (status === 503) {
    return `The server is loading its model or has no free slot${waited}. Wait until its /health answers 200 (\`luallm status\`), or raise llm.max_retries and llm.retry_max_seconds.`
  }
  if (status >= 500) return "The server failed: look at its log (`luallm logs <model>`) and try again."
  return contextWords.test(body)
    ? "The prompt is longer than the model's context: shorten the request, set llm.context_tokens to the model's real context so prompts are shortened before sending, or start the server with a larger context (llama-server -c)."
    : "The server refused the request; its answer above says why."
}

export class LlmHttpError extends Data.TaggedError("LlmHttpError")<{
  readonly url: string
  readonly status: number
  /** The first 2 KB of the response body. */
  readonly body: string
  readonly attempts: number
  /** The server's `Retry-After`, in seconds, when it sent one. */
  readonly retryAfter: number | null
}> {
  override get message() {
    return `The LLM at ${this.url} answered HTTP ${this.status}${tries(this.attempts)}: ${this.body.trim() || "(empty body)"}\n${httpHint(this.status, this.body, this.retryAfter)}`
  }
}

export class LlmBadResponse extends Data.TaggedError("LlmBadResponse")<{
  readonly url: string
  readonly problem: string
  /** The start of what the server sent, when it helps. */
  readonly excerpt: string
}> {
  override get message() {
    const excerpt = this.excerpt === "" ? "" : ` It began: ${JSON.stringify(trimmed(this.excerpt, 200))}.`
    return `The LLM at ${this.url} answered, but ${this.problem}.${excerpt} Check that llm.base_url points at an OpenAI-compatible server (llama-server, Ollama, vLLM, LM Studio) and try again.`
  }
}

export class LlmScriptExhausted extends Data.TaggedError("LlmScriptExhausted")<{
  /** 1-based number of the request that found no reply. */
  readonly request: number
  readonly model: string
  readonly lastUserMessage: string
  readonly scripted: number
}> {
  override get message() {
    return `The scripted LLM has no reply for request #${this.request} (model ${this.model}, last user message ${JSON.stringify(trimmed(this.lastUserMessage))}); its script held ${this.scripted} replies, all used or not matching. Add a reply for this request to the script.`
  }
}

export class LlmContextOverflow extends Data.TaggedError("LlmContextOverflow")<{
  readonly model: string
  /** What the call was for: `plan`, `skill.draft`, `node`, … */
  readonly purpose: string
  /** The prompt's size after every shortening, and whether the server counted it (else an estimate). */
  readonly promptTokens: number
  readonly exact: boolean
  /** Room kept for the answer (max_tokens). */
  readonly answerTokens: number
  readonly contextTokens: number
  /** What was shortened before giving up. */
  readonly shortened: ReadonlyArray<string>
}> {
  override get message() {
    const size = `${this.exact ? "" : "about "}${this.promptTokens} tokens`
    const tried = this.shortened.length === 0 ? "" : ` even with ${this.shortened.join(" and ")}`
    return `The ${this.purpose} prompt needs ${size} plus ${this.answerTokens} for the answer, more than the ${this.contextTokens}-token context of ${this.model}${tried}. Use a model or server with a larger context (llama-server -c, llm.context_tokens), lower llm.max_tokens, or make the request smaller.`
  }
}

export class TaskTokenBudgetExceeded extends Data.TaggedError("TaskTokenBudgetExceeded")<{
  readonly used: number
  /** What the next call would add (prompt and answer room). */
  readonly next: number
  readonly limit: number
  readonly purpose: string
}> {
  override get message() {
    return `The task has used ${this.used} tokens; the next ${this.purpose} call would add up to ${this.next}, past limits.max_task_tokens (${this.limit}). Raise limits.max_task_tokens and resume the task, or reset it and ask for less.`
  }
}

/**
 * The model's server did not answer, after the retries: nothing listened, it stayed silent past
 * the time limits, or it kept failing with a status worth retrying (408, 429, 5xx). A task that
 * meets one pauses until the server answers again; any other error is about the request.
 */
export const isModelUnavailable = (error: unknown): error is LlmUnreachable | LlmTimeout | LlmHttpError =>
  error instanceof LlmUnreachable || error instanceof LlmTimeout ||
  (error instanceof LlmHttpError && (error.status >= 500 || error.status === 408 || error.status === 429))
