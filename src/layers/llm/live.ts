/**
 * The live `Llm`: chat completions over `HttpClient`, built like effect's OpenRouterClient.
 * `filterStatusOk` turns an error status into a `ResponseError`; `retryTransient` asks again on
 * a refused connection, 408, 429, 500, 502, 503 and 504, waiting as `Retry-After` says; a 400
 * (a prompt too long for the context) or a 401 is answered at once. Every call is streamed
 * (SSE, parsed by `@effect/experimental`'s `Sse`): silence for `limits.llm_timeout_seconds`
 * ends it, a slow but live answer does not, and `limits.llm_call_max_seconds` caps the whole.
 * Which endpoint and slot answers is the router's choice; what the body holds depends on the
 * server kind it probed (protocol.ts).
 */
import * as Sse from "@effect/experimental/Sse"
import { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import { Clock, Duration, Effect, Either, Option, Predicate, Ref, Schema, Stream } from "effect"
import { fromJsonText, parseJsonText } from "../../core/jsonText.ts"
import { formatParseError } from "../../core/schemaIssues.ts"
import type { ModelPurpose } from "../Config.ts"
import { AppConfig } from "../Config.ts"
import type { EndpointReport, LlmError, LlmShape } from "../Llm.ts"
import { Luallm, ModelNotRunning, NoModelAvailable, normalizeBaseUrl, serversFor } from "../Luallm.ts"
import { cassetteErrorOf } from "./cassette.ts"
import { LlmBadResponse, LlmHttpError, LlmTimeout, LlmUnreachable } from "./errors.ts"
import {
  ChatCompletionBody,
  ChatCompletionChunk,
  chatBody,
  type Completion,
  type CompletionRequest,
  estimateTokens,
  messageOverhead,
  ollamaStructuredSince,
  olderThan,
  type StreamPart,
  type Timings,
  Tokenized,
  type Usage
} from "./protocol.ts"
import { retryAfterOf, retrySchedule } from "./retry.ts"
import { causeOf, type EndpointInfo, makeRouter } from "./router.ts"

const NO_USAGE_NOTE = "the server reported no token usage; counted as 0"
const zeroUsage: Usage = { prompt_tokens: 0, completion_tokens: 0 }

/** What one piece of an answer adds: text, and the facts that arrive with the last chunks. */
interface Fragment {
  readonly text: string
  readonly model?: string | undefined
  readonly usage?: Usage | null | undefined
  readonly timings?: Timings | null | undefined
  readonly finish?: string | null | undefined
}

/** What a stream has brought so far. */
interface Received {
  readonly content: string
  readonly model: string
  readonly usage: Option.Option<Usage>
  readonly timings: Timings | null
  readonly finish: string
}

/** Servers that enforce a JSON schema sent as `response_format` (and Ollama from 0.5). */
const enforcesSchemas = (endpoint: EndpointInfo): boolean => {
  switch (endpoint.kind) {
    case "llama-server":
    case "vllm":
    case "lmstudio":
    case "openai":
      return true
    case "ollama":
      return endpoint.version !== null && !olderThan(endpoint.version, ollamaStructuredSince)
    case "openai-compatible":
      return false
  }
}

/** Worth trying another endpoint at once: it cannot be reached, or it is loading / out of slots. */
const isFailover = (error: unknown): boolean =>
  Predicate.isTagged(error, "RequestError") && Predicate.hasProperty(error, "reason") && error.reason === "Transport" ||
  Predicate.isTagged(error, "ResponseError") && Predicate.hasProperty(error, "response") &&
    Predicate.hasProperty(error.response, "status") && error.response.status === 503

export const makeLlmLive = Effect.gen(function*() {
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
  const configured = [...new Set([...config.llm.endpoints, ...(config.llm.base_url === null ? [] : [config.llm.base_url])].map(normalizeBaseUrl))]
  const idleSeconds = config.limits.llm_timeout_seconds
  const totalSeconds = config.limits.llm_call_max_seconds
  const idle = Duration.seconds(idleSeconds)
  const policy = { maxRetries: config.llm.max_retries, maxDelaySeconds: config.llm.retry_max_seconds }
  const startHint = (model: string | undefined) => model === undefined ? `${config.luallm.binary} start <model>` : luallm.startCommand(model)

  /** `llm.endpoints` and `llm.base_url`, else the luallm servers running `model`. */
  const candidates = (model: string): Effect.Effect<ReadonlyArray<string>, LlmError> =>
    configured.length > 0 ? Effect.succeed(configured) : Effect.flatMap(luallm.runningModels, (running) => {
      const urls = serversFor(running, model).map((server) => server.baseUrl)
      return urls.length > 0
        ? Effect.succeed(urls)
        : new ModelNotRunning({ model, running: running.map((r) => r.model), startCommand: luallm.startCommand(model) })
    })

  const router = yield* makeRouter({ http, candidates, contextTokens: config.llm.context_tokens > 0 ? config.llm.context_tokens : null, startCommand: startHint })

  const constrainFor = (endpoint: EndpointInfo, request: CompletionRequest): boolean =>
    request.output !== undefined && config.llm.constrained !== "off" && (config.llm.constrained === "on" || enforcesSchemas(endpoint))

  /** A failed exchange as the error a human reads, with how often it was tried. */
  const toLlmError = (error: HttpClientError | LlmTimeout, url: string, attempts: number, model: string): Effect.Effect<never, LlmError> => {
    if (error._tag === "LlmTimeout") return Effect.fail(error)
    const cassette = cassetteErrorOf(error)
    if (cassette !== undefined) return Effect.fail(cassette)
    if (error._tag === "RequestError") return Effect.fail(new LlmUnreachable({ url, reason: causeOf(error), attempts, startCommand: startHint(model) }))
    if (error.reason === "StatusCode") {
      const response = error.response
      return Effect.gen(function*() {
        const body = yield* Effect.orElseSucceed(response.text, () => "")
        const now = yield* Clock.currentTimeMillis
        return yield* new LlmHttpError({ url, status: response.status, body: body.slice(0, 2048), attempts, retryAfter: retryAfterOf(error, now) })
      })
    }
    return Effect.fail(new LlmBadResponse({ url, problem: `its response could not be read (${causeOf(error)})`, excerpt: "" }))
  }

  /**
   * Sends `request` to the endpoint the router leases (held until the scope closes), with
   * retries; a refused connection or a 503 fails over to another endpoint that serves the
   * model, at once, while one is up.
   */
  const open = (request: CompletionRequest) =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const attempt = Effect.gen(function*() {
        const lease = yield* router.lease(request.model, request.affinity)
        const url = `${lease.endpoint.url}/v1/chat/completions`
        const constrained = constrainFor(lease.endpoint, request)
        const client = http.pipe(
          HttpClient.tapRequest(() => Ref.update(attempts, (n) => n + 1)),
          HttpClient.transformResponse(Effect.timeoutFail({ duration: idle, onTimeout: () => new LlmTimeout({ url, limit: "idle", seconds: idleSeconds }) })),
          HttpClient.filterStatusOk,
          HttpClient.retryTransient({
            mode: "errors-only",
            schedule: retrySchedule(policy, (error: HttpClientError | LlmTimeout) => isFailover(error) ? router.hasAlternative(lease) : Effect.succeed(false))
          })
        )
        const post = HttpClientRequest.post(url).pipe(
          HttpClientRequest.bodyUnsafeJson(chatBody(request, { kind: lease.endpoint.kind, slot: lease.slot, constrain: constrained }))
        )
        return yield* client.execute(post).pipe(
          Effect.map((response) => ({ response, lease, url, constrained })),
          Effect.tapError((error) =>
            Effect.zipRight(
              router.release(lease),
              isFailover(error)
                ? Effect.flatMap(Clock.currentTimeMillis, (now) => router.markDown(lease.endpoint.url, retryAfterOf(error, now), error.message))
                : Effect.void
            )
          ),
          Effect.mapError((error) => ({ error, lease, url }))
        )
      })
      const withFailover = (tries: number): typeof attempt =>
        Effect.catchAll(attempt, (failure) =>
          "lease" in failure && isFailover(failure.error) && tries < failure.lease.candidates.length
            ? Effect.flatMap(router.hasAlternative(failure.lease), (other) => (other ? withFailover(tries + 1) : Effect.fail(failure)))
            : Effect.fail(failure))
      return yield* withFailover(1).pipe(
        Effect.catchAll((failure) =>
          "lease" in failure
            ? Effect.flatMap(Ref.get(attempts), (n) => toLlmError(failure.error, failure.url, Math.max(n, 1), request.model))
            : Effect.fail(failure)
        )
      )
    })

  /** The pieces of the answer: SSE chunks, or a whole JSON body from a server that did not stream. */
  const fragments = (response: HttpClientResponse.HttpClientResponse, url: string): Stream.Stream<Fragment, LlmError> => {
    const brokeOff = (error: HttpClientError) => new LlmBadResponse({ url, problem: `its stream broke off (${causeOf(error)})`, excerpt: "" })
    if ((response.headers["content-type"] ?? "").includes("text/event-stream")) {
      const decodeChunk = Schema.decode(fromJsonText(ChatCompletionChunk))
      return response.stream.pipe(
        Stream.timeoutFail(() => new LlmTimeout({ url, limit: "idle", seconds: idleSeconds }), idle),
        Stream.mapError((error) => (error._tag === "LlmTimeout" ? error : brokeOff(error))),
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.makeChannel()),
        Stream.takeWhile((event) => event.data !== "[DONE]"),
        Stream.mapEffect((event) =>
          decodeChunk(event.data).pipe(
            Effect.mapError((error) => new LlmBadResponse({ url, problem: `a chunk of its stream is not a chat completion chunk (${formatParseError(error)})`, excerpt: event.data.slice(0, 200) }))
          )
        ),
        Stream.mapEffect((chunk) =>
          chunk.error !== undefined
            ? new LlmHttpError({ url, status: chunk.error.code ?? 500, body: chunk.error.message, attempts: 1, retryAfter: null })
            : Effect.succeed<Fragment>({
              text: chunk.choices.map((choice) => choice.delta.content ?? "").join(""),
              model: chunk.model,
              usage: chunk.usage,
              timings: chunk.timings,
              finish: chunk.choices.find((choice) => choice.finish_reason)?.finish_reason
            })
        )
      )
    }
    return Stream.fromEffect(Effect.gen(function*() {
      const text = yield* response.text.pipe(
        Effect.timeoutFail({ duration: idle, onTimeout: () => new LlmTimeout({ url, limit: "idle", seconds: idleSeconds }) }),
        Effect.mapError((error) =>
          error._tag === "LlmTimeout" ? error : new LlmBadResponse({ url, problem: `its body broke off before the end (${causeOf(error)})`, excerpt: "" })
        )
      )
      const body = yield* Schema.decode(fromJsonText(ChatCompletionBody))(text).pipe(
        Effect.mapError((error) =>
          new LlmBadResponse({
            url,
            problem: isJson(text) ? `its body is not a chat completion (${formatParseError(error)})` : "its body is not JSON",
            excerpt: text.slice(0, 200)
          })
        )
      )
      const [choice] = body.choices
      if (choice.message.content === null || choice.message.content === undefined) {
        return yield* new LlmBadResponse({ url, problem: "its message has no content (content is null)", excerpt: text.slice(0, 200) })
      }
      return { text: choice.message.content, model: body.model, usage: body.usage, timings: body.timings, finish: choice.finish_reason }
    }))
  }

  const stream = (request: CompletionRequest): Stream.Stream<StreamPart, LlmError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      const total = Duration.seconds(totalSeconds)
      const { constrained, lease, response, url } = yield* open(request).pipe(
        Effect.timeoutFail({
          duration: total,
          onTimeout: () => new LlmTimeout({ url: `the endpoint serving ${request.model}`, limit: "total", seconds: totalSeconds })
        })
      )
      const overTime = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.zipRight(
          Effect.sleep(Duration.subtract(total, Duration.millis(now - started))),
          Effect.fail(new LlmTimeout({ url, limit: "total", seconds: totalSeconds }))
        ))
      const received = yield* Ref.make<Received>({ content: "", model: request.model, usage: Option.none(), timings: null, finish: "" })
      const deltas = fragments(response, url).pipe(
        Stream.tap((fragment) =>
          Ref.update(received, (so) => ({
            content: so.content + fragment.text,
            model: fragment.model ?? so.model,
            usage: Option.orElse(Option.fromNullable(fragment.usage), () => so.usage),
            timings: fragment.timings ?? so.timings,
            finish: fragment.finish ?? so.finish
          }))
        ),
        Stream.filter((fragment) => fragment.text !== ""),
        Stream.map((fragment): StreamPart => ({ _tag: "Delta", text: fragment.text }))
      )
      const done = Effect.gen(function*() {
        const so = yield* Ref.get(received)
        const completion: Completion = {
          content: so.content,
          model: so.model,
          usage: Option.getOrElse(so.usage, () => zeroUsage),
          latency_ms: (yield* Clock.currentTimeMillis) - started,
          notes: [
            ...(Option.isNone(so.usage) ? [NO_USAGE_NOTE] : []),
            ...(so.finish === "length" ? ["the answer was cut off at max_tokens (finish_reason: length)"] : [])
          ],
          timings: so.timings,
          constrained,
          endpoint: lease.endpoint.url
        }
        return { _tag: "Done", completion } satisfies StreamPart
      })
      return Stream.concat(deltas, Stream.fromEffect(done)).pipe(Stream.interruptWhen(overTime))
    }))

  const complete = (request: CompletionRequest) =>
    stream(request).pipe(
      Stream.runLast,
      Effect.flatMap((last) =>
        Option.isSome(last) && last.value._tag === "Done"
          ? Effect.succeed(last.value.completion)
          : Effect.dieMessage("the LLM stream ended without its result")
      ),
      Effect.withSpan("Llm.complete")
    )

  /** Where the default model is served: the first configured endpoint, else luallm's. */
  const defaultEndpoint = configured[0] !== undefined
    ? Effect.succeed(configured[0])
    : Effect.flatMap(luallm.resolveModel("default"), (model) => luallm.endpoint(model))

  const listModels = Effect.gen(function*() {
    const url = yield* defaultEndpoint
    const endpoint = yield* router.info(url)
    return { source: url, models: endpoint.models }
  }).pipe(Effect.withSpan("Llm.listModels"))

  /** With configured endpoints: the configured model, else the first one the server lists. */
  const resolveModel = (purpose: ModelPurpose): Effect.Effect<string, LlmError> =>
    configured.length === 0
      ? luallm.resolveModel(purpose)
      : Option.match(app.modelPolicy(purpose), {
        onSome: Effect.succeed,
        onNone: () =>
          Effect.flatMap(listModels, ({ models, source }) => {
            const first = models[0]
            return first !== undefined ? Effect.succeed(first) : new NoModelAvailable({
              purpose,
              reason: `${source} lists no model`,
              binary: config.luallm.binary
            })
          })
      })

  /** Counts a prompt with llama-server's `/tokenize` (content only, plus a few tokens per message for the template). */
  const tokenize = (endpoint: EndpointInfo, request: CompletionRequest) =>
    Effect.forEach(request.messages, (message) =>
      HttpClientRequest.post(`${endpoint.url}/tokenize`).pipe(
        HttpClientRequest.bodyUnsafeJson({ content: message.content }),
        http.execute,
        Effect.flatMap(HttpClientResponse.schemaBodyJson(Tokenized)),
        Effect.map((tokenized) => tokenized.tokens.length + messageOverhead)
      )).pipe(Effect.map((counts) => counts.reduce((a, b) => a + b, 0)), Effect.scoped)

  const measure = (request: CompletionRequest) =>
    Effect.gen(function*() {
      const { context, endpoints } = yield* router.contextFor(request.model)
      const estimate = estimateTokens(request.messages)
      const server = endpoints.find((endpoint) => endpoint.kind === "llama-server")
      // Counting costs a request per message: only worth it when the estimate is close to the limit.
      if (context === null || server === undefined || estimate < context * 0.6) return { tokens: estimate, exact: false, context }
      const counted = yield* Effect.option(tokenize(server, request))
      return Option.match(counted, {
        onNone: () => ({ tokens: estimate, exact: false, context }),
        onSome: (tokens) => ({ tokens, exact: true, context })
      })
    })

  const endpoints = Effect.gen(function*() {
    const urls = configured.length > 0 ? configured : (yield* luallm.runningModels).map((server) => server.baseUrl)
    const probes = yield* router.report(urls)
    return urls.map((url, i): EndpointReport => {
      const probe = probes[i]
      return probe === undefined || Either.isLeft(probe)
        ? { url, info: null, problem: probe === undefined ? "not probed" : probe.left.message }
        : { url, info: probe.right, problem: null }
    })
  })

  return { complete, stream, listModels, resolveModel, measure, endpoints } satisfies LlmShape
})

const isJson = (text: string): boolean => Either.isRight(parseJsonText(text))
