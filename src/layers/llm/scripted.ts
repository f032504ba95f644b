/**
 * A scripted llama-server as an `HttpClient` transport: it answers `/props`, `/health`,
 * `/v1/models`, `/tokenize` and streamed `/v1/chat/completions` from a `FakeReply` script (each
 * reply used once, by pattern or in order). The demo and the soak record their cassettes from it
 * through the Live layer, so what they replay is what a real server's bytes would be.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform/HttpClientRequest"
import { Effect, Either, Layer, Predicate, Ref } from "effect"
import { parseJsonText } from "../../core/jsonText.ts"
import { type FakeReply, pickReply } from "../Llm.ts"
import { type ChatMessage, estimateTokens, sseAnswer, streamPieces } from "./protocol.ts"

export interface ScriptedServerOptions {
  /** What `/v1/models` lists and every answer names. */
  readonly model: string
  /** `n_ctx` per slot in `/props`. */
  readonly contextTokens?: number
  readonly slots?: number
}

const json = (request: HttpClientRequest, status: number, value: unknown) =>
  HttpClientResponse.fromWeb(request, new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } }))

const messagesOf = (body: unknown): ReadonlyArray<ChatMessage> =>
  Predicate.hasProperty(body, "messages") && Array.isArray(body.messages)
    ? body.messages.filter((m): m is ChatMessage =>
      Predicate.hasProperty(m, "role") && Predicate.hasProperty(m, "content") && typeof m.content === "string" &&
      (m.role === "system" || m.role === "user" || m.role === "assistant")
    )
    : []

const bodyJson = (request: HttpClientRequest): unknown => {
  if (request.body._tag !== "Uint8Array") return undefined
  return Either.getOrUndefined(parseJsonText(new TextDecoder().decode(request.body.body)))
}

const commonPrefix = (a: string, b: string): number => {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return i
}

/** The scripted server as the `HttpClient` (every request goes to it, whatever the host). */
export const ScriptedServer = (replies: ReadonlyArray<FakeReply>, options: ScriptedServerOptions): Layer.Layer<HttpClient.HttpClient> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const remaining = yield* Ref.make(replies)
      /** The last prompt each slot processed: what its prompt cache holds. */
      const cached = yield* Ref.make<ReadonlyMap<number, string>>(new Map())
      const contextTokens = options.contextTokens ?? 8192
      const slots = options.slots ?? 1

      const chat = (request: HttpClientRequest, body: unknown) =>
        Effect.gen(function*() {
          const messages = messagesOf(body)
          const message = messages.filter((m) => m.role === "user").at(-1)?.content ?? ""
          const reply = yield* Ref.modify(remaining, (left) => {
            const index = pickReply(left, message)
            return [left[index], index === -1 ? left : left.filter((_, i) => i !== index)]
          })
          if (reply === undefined) {
            return json(request, 500, { error: { code: 500, message: `the script has no reply for ${JSON.stringify(message.slice(0, 80))}`, type: "server_error" } })
          }
          if (reply.answer._tag === "Fail") {
            return json(request, 500, { error: { code: 500, message: reply.answer.error.message, type: "server_error" } })
          }
          if (reply.delay !== undefined) yield* Effect.sleep(reply.delay)
          const prompt = messages.map((m) => `${m.role}:${m.content}`).join("\n")
          const slot = Predicate.hasProperty(body, "id_slot") && typeof body.id_slot === "number" ? body.id_slot : 0
          const before = (yield* Ref.get(cached)).get(slot) ?? ""
          yield* Ref.update(cached, (all) => new Map(all).set(slot, prompt))
          const promptTokens = estimateTokens(messages)
          const cacheTokens = Math.floor(promptTokens * commonPrefix(before, prompt) / Math.max(1, prompt.length))
          const content = reply.answer.content
          const completionTokens = streamPieces(content).length
          const sse = sseAnswer({
            model: options.model,
            pieces: streamPieces(content),
            usage: reply.answer.usage ?? { prompt_tokens: promptTokens, completion_tokens: completionTokens },
            timings: {
              cache_n: cacheTokens,
              prompt_n: promptTokens - cacheTokens,
              prompt_ms: promptTokens - cacheTokens,
              predicted_n: completionTokens,
              predicted_ms: completionTokens * 20,
              predicted_per_second: 50
            }
          })
          return HttpClientResponse.fromWeb(request, new Response(sse.join(""), { status: 200, headers: { "content-type": "text/event-stream" } }))
        })

      return HttpClient.make((request, url) => {
        const body = bodyJson(request)
        switch (`${request.method} ${url.pathname}`) {
          case "GET /health":
            return Effect.succeed(json(request, 200, { status: "ok" }))
          case "GET /props":
            return Effect.succeed(json(request, 200, { default_generation_settings: { n_ctx: contextTokens }, total_slots: slots }))
          case "GET /v1/models":
            return Effect.succeed(json(request, 200, { object: "list", data: [{ id: options.model, object: "model", owned_by: "llamacpp" }] }))
          case "POST /tokenize": {
            const content = Predicate.hasProperty(body, "content") && typeof body.content === "string" ? body.content : ""
            const count = estimateTokens([{ role: "user", content }])
            return Effect.succeed(json(request, 200, { tokens: Array.from({ length: count }, (_, i) => i) }))
          }
          case "POST /v1/chat/completions":
            return chat(request, body)
          default:
            return Effect.succeed(json(request, 404, { error: { code: 404, message: "File Not Found", type: "not_found_error" } }))
        }
      })
    })
  )
