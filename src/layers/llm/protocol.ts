/**
 * What the `Llm` service is asked and answers, and the OpenAI-compatible chat-completions wire
 * format each kind of server reads: the request body (with a JSON schema in the form that
 * server enforces, and llama-server's prompt-cache and slot fields), and the schemas of a whole
 * answer, a streamed chunk and the probes that tell the servers apart.
 */
import { Schema } from "effect"
import { isStrictCompatible } from "../../core/jsonSchema.ts"

export const ChatMessage = Schema.Struct({
  role: Schema.Literal("system", "user", "assistant"),
  content: Schema.String
})
export type ChatMessage = typeof ChatMessage.Type

/** A JSON schema the answer must match, named for the servers that want a name. */
export const OutputSchema = Schema.Struct({
  /** Letters, digits, `_` and `-` (OpenAI's rule for `json_schema.name`). */
  name: Schema.String,
  schema: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
export type OutputSchema = typeof OutputSchema.Type

export const CompletionRequest = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(ChatMessage),
  temperature: Schema.optional(Schema.Number),
  max_tokens: Schema.optional(Schema.Int),
  /** Structured output: requested from servers that enforce it (`llm.constrained`), parsed leniently either way. */
  output: Schema.optional(OutputSchema),
  /** Calls with the same key (a task id) prefer the same endpoint and slot, where the server's prompt cache has their prefix. */
  affinity: Schema.optional(Schema.String)
})
export type CompletionRequest = typeof CompletionRequest.Type

export const Usage = Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number })
export type Usage = typeof Usage.Type

/** llama-server's figures for one call: prompt tokens taken from its cache, processed and generated, and how fast. */
export const Timings = Schema.Struct({
  cache_n: Schema.optional(Schema.Number),
  prompt_n: Schema.optional(Schema.Number),
  prompt_ms: Schema.optional(Schema.Number),
  prompt_per_second: Schema.optional(Schema.Number),
  predicted_n: Schema.optional(Schema.Number),
  predicted_ms: Schema.optional(Schema.Number),
  predicted_per_second: Schema.optional(Schema.Number)
})
export type Timings = typeof Timings.Type

export const Completion = Schema.Struct({
  content: Schema.String,
  /** The model that answered, as the server names it. */
  model: Schema.String,
  usage: Usage,
  latency_ms: Schema.Number,
  /** What the caller should know about the answer (no usage reported, cut off at max_tokens). */
  notes: Schema.Array(Schema.String),
  /** The server's timings (llama-server), when it sent them. */
  timings: Schema.NullOr(Timings),
  /** Whether the server was asked to enforce `output` (it then answers in that shape). */
  constrained: Schema.Boolean,
  /** Where the answer came from: the endpoint's URL, or what stands in for one. */
  endpoint: Schema.String
})
export type Completion = typeof Completion.Type

/** A streamed answer: text as it arrives, then the same result `complete` returns. */
export type StreamPart =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Done"; readonly completion: Completion }

/** The kinds of server the Live layer tells apart (by `/props`, `/v1/models`' `owned_by`, `/api/version`). */
export type ServerKind = "llama-server" | "ollama" | "vllm" | "lmstudio" | "openai" | "openai-compatible"

/** The first version of Ollama whose `/v1/chat/completions` turns `response_format.json_schema` into its `format`. */
export const ollamaStructuredSince = [0, 5, 0] as const

export const olderThan = (version: string, minimum: ReadonlyArray<number>): boolean => {
  const parts = version.split(/[.-]/).map((part) => Number.parseInt(part, 10))
  for (let i = 0; i < minimum.length; i++) {
    const part = parts[i] ?? 0
    const wanted = minimum[i] ?? 0
    if (Number.isNaN(part)) return true
    if (part !== wanted) return part < wanted
  }
  return false
}

/**
 * The `response_format` each kind reads. All of them take OpenAI's nested form
 * `{type: "json_schema", json_schema: {name, schema}}`: llama-server reads
 * `json_schema.schema` (a flat `{type, schema}` is silently "any JSON" there), vLLM and LM
 * Studio follow OpenAI, and Ollama's `/v1/chat/completions` copies `json_schema.schema` into its
 * native `format` (a top-level `format` is ignored on that endpoint). `strict` goes only to
 * servers that honour it, and only for schemas strict mode accepts.
 */
export const responseFormat = (kind: ServerKind, output: OutputSchema) => ({
  type: "json_schema" as const,
  json_schema: {
    name: output.name,
    schema: output.schema,
    ...((kind === "openai" || kind === "lmstudio" || kind === "vllm") && isStrictCompatible(output.schema) ? { strict: true } : {})
  }
})

export interface WireOptions {
  readonly kind: ServerKind
  /** llama-server slot to pin the call to; `null` lets the server choose. */
  readonly slot: number | null
  /** Whether to send `request.output` as a constraint. */
  readonly constrain: boolean
}

/**
 * The body POSTed to `/v1/chat/completions`. Always streamed (SSE), so silence can be told
 * from a slow answer; llama-server also gets `cache_prompt` and the slot.
 */
export const chatBody = (request: CompletionRequest, options: WireOptions): Record<string, unknown> => ({
  model: request.model,
  messages: request.messages,
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
  stream: true,
  stream_options: { include_usage: true },
  ...(options.kind === "llama-server" ? { cache_prompt: true } : {}),
  ...(options.kind === "llama-server" && options.slot !== null ? { id_slot: options.slot } : {}),
  ...(options.constrain && request.output !== undefined ? { response_format: responseFormat(options.kind, request.output) } : {})
})

/** Fields of a chat body that say where a call runs, not what the model is asked: ignored when replaying. */
export const routingFields: ReadonlyArray<string> = ["id_slot"]

// ---------------------------------------------------------------------------------------------
// What comes back

const Text = Schema.optional(Schema.NullOr(Schema.String))

export const ChatCompletionBody = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.NonEmptyArray(Schema.Struct({
    message: Schema.Struct({ content: Text, reasoning_content: Text }),
    finish_reason: Text
  })),
  usage: Schema.optional(Schema.NullOr(Usage)),
  timings: Schema.optional(Schema.NullOr(Timings))
})
export type ChatCompletionBody = typeof ChatCompletionBody.Type

/** One SSE `data:` event of a streamed answer; llama-server may send an `error` event instead. */
export const ChatCompletionChunk = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.optionalWith(
    Schema.Array(Schema.Struct({
      delta: Schema.optionalWith(Schema.Struct({ content: Text, reasoning_content: Text }), { default: () => ({}) }),
      finish_reason: Text
    })),
    { default: () => [] }
  ),
  usage: Schema.optional(Schema.NullOr(Usage)),
  timings: Schema.optional(Schema.NullOr(Timings)),
  error: Schema.optional(Schema.Struct({ message: Schema.String, code: Schema.optional(Schema.Number) }))
})
export type ChatCompletionChunk = typeof ChatCompletionChunk.Type

export const ModelList = Schema.Struct({
  data: Schema.Array(Schema.Struct({
    id: Schema.String,
    owned_by: Schema.optional(Schema.String),
    /** vLLM: the context the model was started with. */
    max_model_len: Schema.optional(Schema.Number)
  }))
})

/** llama-server's `/props`: the slot context (`n_ctx` per slot) and the number of slots. */
export const ServerProps = Schema.Struct({
  default_generation_settings: Schema.optional(Schema.Struct({ n_ctx: Schema.optional(Schema.Number) })),
  n_ctx: Schema.optional(Schema.Number),
  total_slots: Schema.optional(Schema.Number)
})

/** Ollama's `/api/version`. */
export const OllamaVersion = Schema.Struct({ version: Schema.String })

/** llama-server's `/tokenize`. */
export const Tokenized = Schema.Struct({ tokens: Schema.Array(Schema.Unknown) })

// ---------------------------------------------------------------------------------------------
// Writing an answer (for the scripted server and the test server)

/** The SSE body of a streamed answer as llama-server writes it: deltas, the finish, usage and timings, `[DONE]`. */
export const sseAnswer = (answer: {
  readonly model: string
  readonly pieces: ReadonlyArray<string>
  readonly usage: Usage
  readonly timings?: Timings
}): ReadonlyArray<string> => {
  const event = (choices: ReadonlyArray<object>, extra: object = {}) =>
    `data: ${JSON.stringify({ id: "chatcmpl-local", object: "chat.completion.chunk", model: answer.model, choices, ...extra })}\n\n`
  return [
    event([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]),
    ...answer.pieces.map((piece) => event([{ index: 0, delta: { content: piece }, finish_reason: null }])),
    event([{ index: 0, delta: {}, finish_reason: "stop" }]),
    event([], { usage: answer.usage, ...(answer.timings === undefined ? {} : { timings: answer.timings }) }),
    "data: [DONE]\n\n"
  ]
}

/** Tokens a chat template adds around each message (role markers), roughly. */
export const messageOverhead = 4

/**
 * A prompt's size without asking the server: one token per 3 bytes of UTF-8 (English runs near
 * 4, code and other scripts lower), plus the template's overhead. Meant to err on the large side.
 */
export const estimateTokens = (messages: ReadonlyArray<ChatMessage>): number =>
  messages.reduce((sum, message) => sum + Math.ceil(new TextEncoder().encode(message.content).length / 3) + messageOverhead, 0)

/** A text cut into the pieces a server streams (a word with its leading space). */
export const streamPieces = (text: string): ReadonlyArray<string> => text.match(/\s*\S+|\s+$/g) ?? []
