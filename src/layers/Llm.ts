/**
 * The `Llm` service: chat completions from an OpenAI-compatible server (llama-server run by
 * luallm, Ollama, vLLM, LM Studio) and a scripted Fake for tests. The Live layer's internals
 * are in `llm/` (the wire format per server kind, the endpoint router, retries); record and
 * replay are `HttpClient` transports under it (`llm/cassette.ts`), chosen with `--llm`.
 */
import type { FileSystem, HttpClient, Path } from "@effect/platform"
import { Clock, Context, Data, type Duration, Effect, Either, Layer, Ref, Stream } from "effect"
import type { AppConfig, ModelPurpose } from "./Config.ts"
import {
  type CassetteInvalid,
  type CassetteMismatch,
  type CassetteWriteError,
  HttpClientRecord,
  HttpClientReplay
} from "./llm/cassette.ts"
import {
  type LlmBadResponse,
  type LlmContextOverflow,
  type LlmHttpError,
  LlmScriptExhausted,
  type LlmTimeout,
  type LlmUnreachable,
  type TaskTokenBudgetExceeded
} from "./llm/errors.ts"
import { makeLlmLive } from "./llm/live.ts"
import { type Completion, type CompletionRequest, estimateTokens, type StreamPart, type Usage } from "./llm/protocol.ts"
import type { EndpointInfo } from "./llm/router.ts"
import type { Luallm, LuallmError, ModelNotRunning, NoModelAvailable } from "./Luallm.ts"

export {
  isModelUnavailable,
  LlmBadResponse,
  LlmContextOverflow,
  LlmHttpError,
  LlmScriptExhausted,
  LlmTimeout,
  LlmUnreachable,
  TaskTokenBudgetExceeded
} from "./llm/errors.ts"
export {
  ChatMessage,
  Completion,
  CompletionRequest,
  OutputSchema,
  type ServerKind,
  type StreamPart,
  Timings,
  Usage
} from "./llm/protocol.ts"
export type { EndpointInfo } from "./llm/router.ts"

/** The models an endpoint serves, and where it is (a URL, or what stands in for one). */
export interface ModelListing {
  readonly source: string
  readonly models: ReadonlyArray<string>
}

/** How big a request's prompt is, counted by the server (`exact`) or estimated, and the context it must fit. */
export interface PromptSize {
  readonly tokens: number
  readonly exact: boolean
  /** The model's context in tokens; `null` when neither the server nor llm.context_tokens says. */
  readonly context: number | null
}

/** One endpoint as a fresh probe found it, for `doctor`. */
export interface EndpointReport {
  readonly url: string
  /** What the probe found; `null` when it could not tell (see `problem`). */
  readonly info: EndpointInfo | null
  readonly problem: string | null
}

/** Everything a call to the LLM can fail with, whichever layer serves it. */
export type LlmError =
  | LlmUnreachable
  | LlmTimeout
  | LlmHttpError
  | LlmBadResponse
  | LlmScriptExhausted
  | LlmContextOverflow
  | TaskTokenBudgetExceeded
  | CassetteMismatch
  | CassetteWriteError
  | LuallmError
  | ModelNotRunning
  | NoModelAvailable

export interface LlmShape {
  readonly complete: (request: CompletionRequest) => Effect.Effect<Completion, LlmError>
  /** The same call, streamed: `Delta`s as text arrives, then one `Done` with the result. */
  readonly stream: (request: CompletionRequest) => Stream.Stream<StreamPart, LlmError>
  /** The models the default endpoint serves (`GET /v1/models`). */
  readonly listModels: Effect.Effect<ModelListing, LlmError>
  /** The model to ask for `purpose`, as this layer sees it (luallm, the server, a script). */
  readonly resolveModel: (purpose: ModelPurpose) => Effect.Effect<string, LlmError>
  /** The prompt's size and the context it must fit, before sending it (`/props`, `/tokenize`, else estimates). */
  readonly measure: (request: CompletionRequest) => Effect.Effect<PromptSize, LlmError>
  /** Every endpoint this layer would use, probed now. */
  readonly endpoints: Effect.Effect<ReadonlyArray<EndpointReport>, LlmError>
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

/**
 * The live layer: `llm.endpoints` / `llm.base_url` or luallm discovery, over whatever
 * `HttpClient` is provided (the platform's, or a cassette's).
 */
export const LlmLive: Layer.Layer<Llm, never, AppConfig | HttpClient.HttpClient | Luallm> = Layer.effect(Llm, makeLlmLive)

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
export const pickReply = (replies: ReadonlyArray<FakeReply>, message: string): number => {
  const byPattern = replies.findIndex((reply) => reply.when !== undefined && matches(reply.when, message))
  return byPattern !== -1 ? byPattern : replies.findIndex((reply) => reply.when === undefined)
}

/** Every request the Fake layer received, for tests. */
export class LlmRequests extends Context.Tag("LlmRequests")<LlmRequests, {
  readonly requests: Effect.Effect<ReadonlyArray<CompletionRequest>>
}>() {}

/**
 * A scripted model: each reply is used once, by pattern or in order, and a request that finds
 * none fails with `LlmScriptExhausted`. `resolveModel` answers `options.model` ("fake-model");
 * `measure` estimates, against `options.contextTokens` when given.
 */
export const LlmFake = (
  replies: ReadonlyArray<FakeReply>,
  options: { readonly model?: string; readonly contextTokens?: number } = {}
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
        notes: [],
        timings: null,
        constrained: false,
        endpoint: "scripted fake"
      } satisfies Completion
    })

    const llm: LlmShape = {
      complete,
      stream: streamFromComplete(complete),
      listModels: Effect.succeed({ source: "scripted fake", models: [model] }),
      resolveModel: () => Effect.succeed(model),
      measure: (request) => Effect.succeed({ tokens: estimateTokens(request.messages), exact: false, context: options.contextTokens ?? null }),
      endpoints: Effect.succeed([])
    }
    return Context.make(Llm, llm).pipe(Context.add(LlmRequests, { requests: Ref.get(requests) }))
  }))

const zeroUsage: Usage = { prompt_tokens: 0, completion_tokens: 0 }

// ---------------------------------------------------------------------------------------------
// --llm: live, record:FILE, replay:FILE

export class LlmSpecInvalid extends Data.TaggedError("LlmSpecInvalid")<{ readonly spec: string }> {
  override get message() {
    return `--llm ${JSON.stringify(this.spec)} is not a choice: use live, replay:<cassette.jsonl> or record:<cassette.jsonl>.`
  }
}

export type LlmSpec =
  | { readonly _tag: "Live" }
  | { readonly _tag: "Replay"; readonly path: string }
  | { readonly _tag: "Record"; readonly path: string }

export const parseLlmSpec = (spec: string): Either.Either<LlmSpec, LlmSpecInvalid> => {
  if (spec === "live") return Either.right({ _tag: "Live" })
  const match = /^(replay|record):(.+)$/.exec(spec)
  const path = match?.[2]
  if (path === undefined) return Either.left(new LlmSpecInvalid({ spec }))
  return Either.right(match?.[1] === "replay" ? { _tag: "Replay", path } : { _tag: "Record", path })
}

export type LlmLayerError = LlmSpecInvalid | CassetteInvalid | CassetteWriteError
export type LlmLayerRequirements = AppConfig | HttpClient.HttpClient | Luallm | FileSystem.FileSystem | Path.Path

/** The `Llm` layer for a `--llm` value: always the Live layer, over the network or a cassette. */
export const llmLayerFor = (spec: string): Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> =>
  Layer.unwrapEffect(
    Effect.map(parseLlmSpec(spec), (parsed): Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> => {
      switch (parsed._tag) {
        case "Live":
          return LlmLive
        case "Replay":
          return LlmLive.pipe(Layer.provide(HttpClientReplay(parsed.path)))
        case "Record":
          return LlmLive.pipe(Layer.provide(HttpClientRecord(parsed.path)))
      }
    })
  )
