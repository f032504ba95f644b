/**
 * The `Llm` service: chat completions from an OpenAI-compatible server (llama-server run by
 * luallm, Ollama, vLLM, LM Studio) over `/v1/chat/completions`, and a scripted Fake for
 * tests. Record and Replay (cassettes) and the `--llm` selector are in `LlmCassette.ts`.
 */
import * as Sse from "@effect/experimental/Sse"
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Clock, Context, Data, Duration, Effect, Layer, Option, Ref, Schedule, Schema, Stream } from "effect"
import { parseJsonText } from "../core/jsonText.ts"
import { formatParseError } from "../core/schemaIssues.ts"
import { AppConfig, type ModelPurpose } from "./Config.ts"
import type { CassetteMismatch, CassetteWriteError } from "./LlmCassette.ts"
import { Luallm, type LuallmError, type ModelNotRunning, NoModelAvailable, normalizeBaseUrl } from "./Luallm.ts"

export const ChatMessage = Schema.Struct({
  role: Schema.Literal("system", "user", "assistant"),
  content: Schema.String
})
export type ChatMessage = typeof ChatMessage.Type

/** `json_object` may carry a JSON schema (llama-server turns it into a grammar). */
export const ResponseFormat = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object"), schema: Schema.optional(Schema.Unknown) }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    json_schema: Schema.Struct({ name: Schema.String, schema: Schema.Unknown, strict: Schema.optional(Schema.Boolean) })
  })
)

export const CompletionRequest = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(ChatMessage),
  temperature: Schema.optional(Schema.Number),
  max_tokens: Schema.optional(Schema.Int),
  response_format: Schema.optional(ResponseFormat)
})
export type CompletionRequest = typeof CompletionRequest.Type

export const Usage = Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number })
export type Usage = typeof Usage.Type

export const Completion = Schema.Struct({
  content: Schema.String,
  /** The model that answered, as the server names it. */
  model: Schema.String,
  usage: Usage,
  latency_ms: Schema.Number,
  /** What the caller should know about the answer (no usage reported, cut off at max_tokens). */
  notes: Schema.Array(Schema.String)
})
export type Completion = typeof Completion.Type

/** A streamed answer: text as it arrives, then the same result `complete` returns. */
export type StreamPart =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Done"; readonly completion: Completion }

/** The models an endpoint serves, and where it is (a URL, or what stands in for one). */
export interface ModelListing {
  readonly source: string
  readonly models: ReadonlyArray<string>
}

const trimmed = (text: string, max = 120): string => (text.length > max ? `${text.slice(0, max)}…` : text)

const tries = (attempts: number): string => (attempts > 1 ? ` (${attempts} attempts)` : "")

export class LlmUnreachable extends Data.TaggedError("LlmUnreachable")<{
  readonly url: string
  readonly reason: string
  readonly attempts: number
  readonly startCommand: string
}> {
  override get message() {
    return `Could not reach the LLM at ${this.url}: ${this.reason}${tries(this.attempts)}. Start the model with \`${this.startCommand}\`, or check llm.base_url (LUALLM_AGENT_LLM_BASE_URL).`
  }
}

export class LlmTimeout extends Data.TaggedError("LlmTimeout")<{
  readonly url: string
  readonly seconds: number
}> {
  override get message() {
    return `The LLM at ${this.url} did not answer within ${this.seconds}s (limits.llm_timeout_seconds). A big model or a long prompt can need more: raise limits.llm_timeout_seconds (LUALLM_AGENT_LIMITS_LLM_TIMEOUT_SECONDS), or use a smaller model.`
  }
}

const httpHint = (status: number): string =>
  status === 401 || status === 403
    ? "Check llm.api_key (LUALLM_AGENT_LLM_API_KEY)."
    : status === 404
    ? "Check that llm.base_url points at an OpenAI-compatible server: the path was not found."
    : status >= 500
    ? "The server failed: look at its log (`luallm logs <model>`) and try again."
    : "The server refused the request; its answer above says why. A prompt longer than the model's context is a common cause: shorten the request, or use a model with a longer context."

export class LlmHttpError extends Data.TaggedError("LlmHttpError")<{
  readonly url: string
  readonly status: number
  /** The first 2 KB of the response body. */
  readonly body: string
  readonly attempts: number
}> {
  override get message() {
    return `The LLM at ${this.url} answered HTTP ${this.status}${tries(this.attempts)}: ${this.body.trim() || "(empty body)"}\n${httpHint(this.status)}`
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

/** Everything a call to the LLM can fail with, whichever layer serves it. */
export type LlmError =
  | LlmUnreachable
  | LlmTimeout
  | LlmHttpError
  | LlmBadResponse
  | LlmScriptExhausted
  | CassetteMismatch
  | CassetteWriteError
  | LuallmError
  | ModelNotRunning
  | NoModelAvailable

export interface LlmShape {
  readonly complete: (request: CompletionRequest) => Effect.Effect<Completion, LlmError>
  /** The same call, streamed: `Delta`s as text arrives, then one `Done` with the result. */
  readonly stream: (request: CompletionRequest) => Stream.Stream<StreamPart, LlmError>
  /** `GET /v1/models` on the endpoint the default model is served from. */
  readonly listModels: Effect.Effect<ModelListing, LlmError>
  /** The model to ask for `purpose`, as this layer sees it (luallm, the server, a cassette, a script). */
  readonly resolveModel: (purpose: ModelPurpose) => Effect.Effect<string, LlmError>
}

export class Llm extends Context.Tag("Llm")<Llm, LlmShape>() {}

export const lastUserMessage = (request: CompletionRequest): string =>
  request.messages.filter((message) => message.role === "user").at(-1)?.content ?? ""

/** A stream for layers that answer all at once: the whole text as one delta, then the result. */
export const streamFromComplete = (complete: LlmShape["complete"]) => (request: CompletionRequest) =>
  Stream.fromEffect(complete(request)).pipe(
    Stream.flatMap((completion) =>
      Stream.fromIterable<StreamPart>([{ _tag: "Delta", text: completion.content }, { _tag: "Done", completion }])
    )
  )

// ---------------------------------------------------------------------------------------------
// Live: HTTP to an OpenAI-compatible server
// ---------------------------------------------------------------------------------------------

const ChatCompletionBody = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.NonEmptyArray(Schema.Struct({
    message: Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(Usage))
})

const ChatCompletionChunk = Schema.Struct({
  model: Schema.optional(Schema.String),
  choices: Schema.Array(Schema.Struct({
    delta: Schema.Struct({ content: Schema.optional(Schema.NullOr(Schema.String)) }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(Usage))
})

const chunkText = (chunk: typeof ChatCompletionChunk.Type): string =>
  chunk.choices.map((choice) => choice.delta.content ?? "").join("")

const ModelList = Schema.Struct({ data: Schema.Array(Schema.Struct({ id: Schema.String })) })

/** Decodes a JSON body, telling "not JSON" apart from "JSON of the wrong shape". */
const decodeBody = <A, I>(schema: Schema.Schema<A, I>, url: string, what: string, text: string) =>
  Effect.mapError(parseJsonText(text), () => "not JSON").pipe(
    Effect.flatMap((json) => Effect.mapError(Schema.decodeUnknown(schema)(json), (error) => `not ${what} (${formatParseError(error)})`)),
    Effect.mapError((problem) => new LlmBadResponse({ url, problem: `its body is ${problem}`, excerpt: text.slice(0, 200) }))
  )

/** A refused connection and a 5xx are worth a few quick retries; a 4xx, a bad URL or a timeout are not. */
const RETRIES = 3
const retrySchedule = Schedule.exponential(Duration.millis(100)).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(RETRIES)))

/** A non-2xx answer, before it becomes an `LlmHttpError` that knows how often it was tried. */
class UnexpectedStatus extends Data.TaggedError("UnexpectedStatus")<{ readonly status: number; readonly body: string }> {}

const isTransient = (error: HttpClientError | UnexpectedStatus): boolean =>
  error._tag === "UnexpectedStatus" ? error.status >= 500 : error._tag === "RequestError" && error.reason === "Transport"

const NO_USAGE_NOTE = "the server reported no token usage; counted as 0"
const notesFor = (usage: Option.Option<Usage>, finishReason: string | null | undefined): Array<string> => [
  ...(Option.isNone(usage) ? [NO_USAGE_NOTE] : []),
  ...(finishReason === "length" ? ["the answer was cut off at max_tokens (finish_reason: length)"] : [])
]
const zeroUsage: Usage = { prompt_tokens: 0, completion_tokens: 0 }

/** The live layer: base URL from `llm.base_url` or luallm discovery, timeout and retries from the config. */
export const LlmLive: Layer.Layer<Llm, never, AppConfig | HttpClient.HttpClient | Luallm> = Layer.effect(
  Llm,
  Effect.gen(function*() {
    const app = yield* AppConfig
    const luallm = yield* Luallm
    const { config } = app
    const apiKey = config.llm.api_key
    const http = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        apiKey === null || apiKey === ""
          ? HttpClientRequest.acceptJson(request)
          : HttpClientRequest.bearerToken(HttpClientRequest.acceptJson(request), apiKey)
      )
    )
    const configuredBase = Option.map(Option.fromNullable(config.llm.base_url), normalizeBaseUrl)
    const timeoutSeconds = config.limits.llm_timeout_seconds
    const timeout = Duration.seconds(timeoutSeconds)
    const startHint = (model: string | undefined) =>
      model === undefined ? `${config.luallm.binary} start <model>` : luallm.startCommand(model)

    /** Sends `request`, retrying transient failures; a 2xx response comes back unread. */
    const send = (request: HttpClientRequest.HttpClientRequest, url: string, model: string | undefined) =>
      http.execute(request).pipe(
        Effect.flatMap((response) =>
          response.status >= 200 && response.status < 300
            ? Effect.succeed(response)
            : Effect.flatMap(
              Effect.orElseSucceed(response.text, () => ""),
              (body) => new UnexpectedStatus({ status: response.status, body: body.slice(0, 2048) })
            )
        ),
        Effect.retry({ schedule: retrySchedule, while: isTransient }),
        Effect.mapError((error) => {
          const attempts = isTransient(error) ? RETRIES + 1 : 1
          switch (error._tag) {
            case "UnexpectedStatus":
              return new LlmHttpError({ url, status: error.status, body: error.body, attempts })
            case "RequestError":
              return new LlmUnreachable({ url, reason: causeOf(error), attempts, startCommand: startHint(model) })
            case "ResponseError":
              return new LlmBadResponse({ url, problem: `its response could not be read (${causeOf(error)})`, excerpt: "" })
          }
        })
      )

    const readText = (response: HttpClientResponse.HttpClientResponse, url: string) =>
      Effect.mapError(
        response.text,
        (error) => new LlmBadResponse({ url, problem: `its body broke off before the end (${causeOf(error)})`, excerpt: "" })
      )

    /** The whole call, retries included, must finish within `limits.llm_timeout_seconds`. */
    const withinLimit = (url: string) =>
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new LlmTimeout({ url, seconds: timeoutSeconds }) })
    const streamDeadline = (url: string) =>
      Effect.zipRight(Effect.sleep(timeout), Effect.fail(new LlmTimeout({ url, seconds: timeoutSeconds })))

    const chatUrl = (model: string) => Effect.map(luallm.endpoint(model), (base) => `${base}/v1/chat/completions`)

    const complete = Effect.fn("Llm.complete")(function*(request: CompletionRequest) {
      const url = yield* chatUrl(request.model)
      const started = yield* Clock.currentTimeMillis
      const text = yield* send(HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson(request)), url, request.model).pipe(
        Effect.flatMap((response) => readText(response, url)),
        withinLimit(url)
      )
      const body = yield* decodeBody(ChatCompletionBody, url, "a chat completion", text)
      const [choice] = body.choices
      if (choice.message.content === null || choice.message.content === undefined) {
        return yield* new LlmBadResponse({ url, problem: "its message has no content (content is null)", excerpt: text.slice(0, 200) })
      }
      const usage = Option.fromNullable(body.usage)
      return {
        content: choice.message.content,
        model: body.model ?? request.model,
        usage: Option.getOrElse(usage, () => zeroUsage),
        latency_ms: (yield* Clock.currentTimeMillis) - started,
        notes: notesFor(usage, choice.finish_reason)
      }
    })

    const stream = (request: CompletionRequest): Stream.Stream<StreamPart, LlmError> =>
      Stream.unwrap(Effect.gen(function*() {
        const url = yield* chatUrl(request.model)
        const started = yield* Clock.currentTimeMillis
        const received = yield* Ref.make({ content: "", model: request.model, usage: Option.none<Usage>(), finish: "" })
        const post = HttpClientRequest.post(url).pipe(
          HttpClientRequest.bodyUnsafeJson({ ...request, stream: true, stream_options: { include_usage: true } })
        )
        const deltas = Stream.unwrap(Effect.map(send(post, url, request.model), (response) => response.stream)).pipe(
          Stream.mapError((error) =>
            error._tag === "ResponseError"
              ? new LlmBadResponse({ url, problem: `its stream broke off (${causeOf(error)})`, excerpt: "" })
              : error
          ),
          Stream.decodeText(),
          Stream.pipeThroughChannel(Sse.makeChannel()),
          Stream.takeWhile((event) => event.data !== "[DONE]"),
          Stream.mapEffect((event) => decodeBody(ChatCompletionChunk, url, "a chat completion chunk", event.data)),
          Stream.tap((chunk) =>
            Ref.update(received, (so) => ({
              content: so.content + chunkText(chunk),
              model: chunk.model ?? so.model,
              usage: Option.orElse(Option.fromNullable(chunk.usage), () => so.usage),
              finish: chunk.choices.find((c) => c.finish_reason)?.finish_reason ?? so.finish
            }))
          ),
          Stream.map(chunkText),
          Stream.filter((text) => text !== ""),
          Stream.map((text): StreamPart => ({ _tag: "Delta", text }))
        )
        const done = Effect.gen(function*() {
          const so = yield* Ref.get(received)
          const completion: Completion = {
            content: so.content,
            model: so.model,
            usage: Option.getOrElse(so.usage, () => zeroUsage),
            latency_ms: (yield* Clock.currentTimeMillis) - started,
            notes: notesFor(so.usage, so.finish)
          }
          return { _tag: "Done", completion } satisfies StreamPart
        })
        return Stream.concat(deltas, Stream.fromEffect(done)).pipe(Stream.interruptWhen(streamDeadline(url)))
      }))

    const defaultEndpoint = Option.match(configuredBase, {
      onSome: (base) => Effect.succeed({ base, model: undefined }),
      onNone: () =>
        Effect.gen(function*() {
          const model = yield* luallm.resolveModel("default")
          return { base: yield* luallm.endpoint(model), model }
        })
    })

    const listModels = Effect.gen(function*() {
      const { base, model } = yield* defaultEndpoint
      const url = `${base}/v1/models`
      const text = yield* send(HttpClientRequest.get(url), url, model).pipe(
        Effect.flatMap((response) => readText(response, url)),
        withinLimit(url)
      )
      const list = yield* decodeBody(ModelList, url, "a model list", text)
      return { source: base, models: list.data.map((entry) => entry.id) }
    }).pipe(Effect.withSpan("Llm.listModels"))

    /** With `llm.base_url`: the configured model, else the first one the server lists. */
    const resolveModel = (purpose: ModelPurpose): Effect.Effect<string, LlmError> =>
      Option.isNone(configuredBase)
        ? luallm.resolveModel(purpose)
        : Option.match(app.modelPolicy(purpose), {
          onSome: Effect.succeed,
          onNone: () =>
            Effect.flatMap(listModels, ({ models, source }) => {
              const first = models[0]
              return first !== undefined ? Effect.succeed(first) : new NoModelAvailable({
                purpose,
                reason: `llm.base_url ${source} lists no model`,
                binary: config.luallm.binary
              })
            })
        })

    return { complete, stream, listModels, resolveModel }
  })
)

/** The underlying words for an HTTP failure (`connect ECONNREFUSED 127.0.0.1:8080`, `aborted`). */
const causeOf = (error: HttpClientError): string => {
  if (error._tag === "RequestError" && error.reason === "InvalidUrl") return "not a valid URL (llm.base_url must look like http://127.0.0.1:8080)"
  const cause: unknown = error.cause
  return cause instanceof Error ? cause.message : error.message
}

// ---------------------------------------------------------------------------------------------
// Fake: a scripted model for tests
// ---------------------------------------------------------------------------------------------

/** One scripted turn: content or an error, optionally after a delay and only for matching requests. */
export interface FakeReply {
  /** Answers only a request whose last user message contains this string or matches this RegExp. */
  readonly when?: string | RegExp
  /** Waits this long first (on the Effect clock, so `TestClock` drives it). */
  readonly delay?: Duration.DurationInput
  readonly answer:
    | { readonly _tag: "Content"; readonly content: string; readonly usage?: Usage }
    | { readonly _tag: "Fail"; readonly error: LlmError }
}

interface FakeReplyOptions {
  readonly when?: string | RegExp
  readonly delay?: Duration.DurationInput
}

export const FakeReply = {
  content: (content: string, options: FakeReplyOptions & { readonly usage?: Usage } = {}): FakeReply => {
    const { usage, ...rest } = options
    return { ...rest, answer: usage === undefined ? { _tag: "Content", content } : { _tag: "Content", content, usage } }
  },
  fail: (error: LlmError, options: FakeReplyOptions = {}): FakeReply => ({ ...options, answer: { _tag: "Fail", error } })
}

const matches = (pattern: string | RegExp, text: string): boolean =>
  typeof pattern === "string" ? text.includes(pattern) : text.search(pattern) !== -1

/** The reply for a request: the first unused one whose pattern matches, else the next one without a pattern. */
const pickReply = (replies: ReadonlyArray<FakeReply>, message: string): number => {
  const byPattern = replies.findIndex((reply) => reply.when !== undefined && matches(reply.when, message))
  return byPattern !== -1 ? byPattern : replies.findIndex((reply) => reply.when === undefined)
}

/** Every request the Fake layer received, for tests. */
export class LlmRequests extends Context.Tag("LlmRequests")<LlmRequests, {
  readonly requests: Effect.Effect<ReadonlyArray<CompletionRequest>>
}>() {}

/**
 * A scripted model: each reply is used once, by pattern or in order, and a request that finds
 * none fails with `LlmScriptExhausted`. `resolveModel` answers `options.model` ("fake-model").
 */
export const LlmFake = (
  replies: ReadonlyArray<FakeReply>,
  options: { readonly model?: string } = {}
): Layer.Layer<Llm | LlmRequests> =>
  Layer.effectContext(Effect.gen(function*() {
    const model = options.model ?? "fake-model"
    const remaining = yield* Ref.make(replies)
    const requests = yield* Ref.make<ReadonlyArray<CompletionRequest>>([])

    const complete = Effect.fn("Llm.complete")(function*(request: CompletionRequest) {
      const number = (yield* Ref.updateAndGet(requests, (all) => [...all, request])).length
      const started = yield* Clock.currentTimeMillis
      const message = lastUserMessage(request)
      const reply = yield* Ref.modify(remaining, (left) => {
        const index = pickReply(left, message)
        return [left[index], index === -1 ? left : left.filter((_, i) => i !== index)]
      })
      if (reply === undefined) {
        return yield* new LlmScriptExhausted({ request: number, model: request.model, lastUserMessage: message, scripted: replies.length })
      }
      if (reply.delay !== undefined) yield* Effect.sleep(reply.delay)
      if (reply.answer._tag === "Fail") return yield* Effect.fail(reply.answer.error)
      return {
        content: reply.answer.content,
        model: request.model,
        usage: reply.answer.usage ?? zeroUsage,
        latency_ms: (yield* Clock.currentTimeMillis) - started,
        notes: []
      }
    })

    const llm: LlmShape = {
      complete,
      stream: streamFromComplete(complete),
      listModels: Effect.succeed({ source: "scripted fake", models: [model] }),
      resolveModel: () => Effect.succeed(model)
    }
    return Context.make(Llm, llm).pipe(Context.add(LlmRequests, { requests: Ref.get(requests) }))
  }))
