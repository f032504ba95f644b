/**
 * Cassettes: JSONL files of HTTP exchanges with the model server, recorded and replayed at the
 * `HttpClient` transport, under the Live `Llm` layer. So a replay runs the real request
 * building, retries, SSE parsing and decoding; only the bytes come from the file.
 *
 * Record wraps the real client and appends each exchange (streamed bodies as the server sent
 * them) once its body has been read; every recording process first appends a session line, so
 * `run`, `approvals approve` and `resume` recorded one after another make one cassette. Replay
 * serves each recorded exchange once, the first unused one that matches (method, path and body,
 * routing fields aside), so a later process of the same session finds its own requests; a GET
 * may be served again, and one never recorded is a 404. Any other request with no match fails
 * with a diff-like `CassetteMismatch`.
 * Headers are never recorded (they carry the API key), except `content-type` and `retry-after`.
 */
import { FileSystem, HttpClient, HttpClientResponse, Path } from "@effect/platform"
import { RequestError } from "@effect/platform/HttpClientError"
import type { HttpClientRequest } from "@effect/platform/HttpClientRequest"
import { Clock, Data, Effect, Either, Exit, Layer, Predicate, Ref, Schema, Stream } from "effect"
import { fromJsonText, parseJsonText } from "../../core/jsonText.ts"
import { formatParseError } from "../../core/schemaIssues.ts"
import { routingFields } from "./protocol.ts"

export const RecordedRequest = Schema.Struct({
  method: Schema.String,
  url: Schema.String,
  /** The JSON body, when there was one. */
  body: Schema.optional(Schema.Unknown)
})
export type RecordedRequest = typeof RecordedRequest.Type

export const RecordedResponse = Schema.Struct({
  status: Schema.Int,
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  /** The body as text: a JSON document, or an SSE stream as sent. */
  body: Schema.String
})

export const CassetteExchange = Schema.Struct({ request: RecordedRequest, response: RecordedResponse })
export type CassetteExchange = typeof CassetteExchange.Type

/** Written first by every recording process: when it started. */
export const CassetteSession = Schema.Struct({ session: Schema.String })

/** One line of a cassette. */
export const CassetteLine = Schema.Union(CassetteSession, CassetteExchange)
export type CassetteLine = typeof CassetteLine.Type

const CassetteLineJson = fromJsonText(CassetteLine)

const keptHeaders: ReadonlyArray<string> = ["content-type", "retry-after"]

// ---------------------------------------------------------------------------------------------
// Errors

const excerptAround = (text: string, at: number): string => {
  const start = Math.max(0, at - 40)
  const end = Math.min(text.length, at + 60)
  return `${start > 0 ? "…" : ""}${JSON.stringify(text.slice(start, end))}${end < text.length ? "…" : ""}`
}

const firstDifference = (a: string, b: string): number => {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return i
}

const pathOf = (url: string): string => {
  try {
    return new URL(url).pathname
  } catch {
    return url
  }
}

const fieldsOf = (body: unknown): Readonly<Record<string, unknown>> =>
  Predicate.isRecord(body) ? Object.fromEntries(Object.entries(body).filter(([key]) => !routingFields.includes(key))) : {}

interface Message {
  readonly role: string
  readonly content: string
}
const messagesOf = (body: unknown): ReadonlyArray<Message> => {
  const messages = fieldsOf(body)["messages"]
  return Array.isArray(messages)
    ? messages.map((m) => ({
      role: Predicate.hasProperty(m, "role") ? String(m.role) : "?",
      content: Predicate.hasProperty(m, "content") && typeof m.content === "string" ? m.content : JSON.stringify(m)
    }))
    : []
}

const shortJson = (value: unknown): string => {
  const text = JSON.stringify(value) ?? "nothing"
  return text.length > 100 ? `${text.slice(0, 100)}…` : text
}

/** The first difference between two message lists, told like a diff. */
const messageDifference = (expected: ReadonlyArray<Message>, actual: ReadonlyArray<Message>): string | undefined => {
  for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
    const want = expected[i]
    const got = actual[i]
    if (want === undefined && got !== undefined) {
      return `messages[${i}]: the recording has ${expected.length} messages, this request has a ${got.role} message more: ${excerptAround(got.content, 0)}`
    }
    if (got === undefined && want !== undefined) {
      return `messages[${i}]: expected a ${want.role} message ${excerptAround(want.content, 0)}, this request has only ${actual.length} messages`
    }
    if (want !== undefined && got !== undefined && want.role !== got.role) return `messages[${i}].role: expected ${want.role}, got ${got.role}`
    if (want !== undefined && got !== undefined && want.content !== got.content) {
      const at = firstDifference(want.content, got.content)
      return `messages[${i}] (${want.role}) differs at character ${at + 1}:\n    expected: ${excerptAround(want.content, at)}\n    actual:   ${excerptAround(got.content, at)}`
    }
  }
  return undefined
}

/** What differs between a recorded request and the one made now, one finding per line. */
export const requestDifferences = (expected: RecordedRequest, actual: RecordedRequest): ReadonlyArray<string> => {
  if (expected.method !== actual.method || pathOf(expected.url) !== pathOf(actual.url)) {
    return [`request: expected ${expected.method} ${pathOf(expected.url)}, got ${actual.method} ${pathOf(actual.url)}`]
  }
  const want = fieldsOf(expected.body)
  const got = fieldsOf(actual.body)
  const keys = [...new Set([...Object.keys(want), ...Object.keys(got)])].sort((a, b) => (a === "model" ? -1 : b === "model" ? 1 : 0))
  return keys.flatMap((key) => {
    if (key === "messages") {
      const found = messageDifference(messagesOf(expected.body), messagesOf(actual.body))
      return found === undefined ? [] : [found]
    }
    return JSON.stringify(want[key]) === JSON.stringify(got[key]) ? [] : [`${key}: expected ${shortJson(want[key])}, got ${shortJson(got[key])}`]
  })
}

const lastUserContent = (request: RecordedRequest): string =>
  messagesOf(request.body).filter((m) => m.role === "user").at(-1)?.content ?? ""

export class CassetteMismatch extends Data.TaggedError("CassetteMismatch")<{
  readonly cassette: string
  /** 1-based number of the request in this process. */
  readonly request: number
  /** The nearest recorded request not yet replayed (same path when there is one); `null` when all were. */
  readonly expected: RecordedRequest | null
  readonly actual: RecordedRequest
  readonly recorded: number
}> {
  override get message() {
    const rerecord = `If the change is intended, record the cassette again with --llm record:${this.cassette} (after deleting it: recording appends).`
    if (this.expected === null) {
      const model = fieldsOf(this.actual.body)["model"]
      const about = [`${this.actual.method} ${pathOf(this.actual.url)}`, ...(typeof model === "string" ? [`model ${model}`] : [])]
      const user = lastUserContent(this.actual)
      return `Request #${this.request} (${about.join(", ")}${user === "" ? "" : `, last user message ${excerptAround(user, 0)}`}) is not in the cassette ${this.cassette}: its ${this.recorded} recorded requests have all been replayed. ${rerecord}`
    }
    const differences = requestDifferences(this.expected, this.actual).map((line) => `  ${line}`)
    return [`Request #${this.request} does not match the cassette ${this.cassette}:`, ...differences, rerecord].join("\n")
  }
}

export class CassetteInvalid extends Data.TaggedError("CassetteInvalid")<{
  readonly path: string
  readonly line: number | null
  readonly reason: string
}> {
  override get message() {
    const where = this.line === null ? this.path : `${this.path}, line ${this.line},`
    return `The cassette ${where} cannot be replayed: ${this.reason}. Record it with --llm record:${this.path}.`
  }
}

export class CassetteWriteError extends Data.TaggedError("CassetteWriteError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Could not write the cassette ${this.path}: ${this.reason}. Choose a writable path for --llm record:<file>.`
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a request

const decoder = new TextDecoder()

/** The request's JSON body, as sent. */
const bodyOf = (request: HttpClientRequest): unknown => {
  if (request.body._tag !== "Uint8Array") return undefined
  const text = decoder.decode(request.body.body)
  return Either.getOrElse(parseJsonText(text), () => text)
}

const recordedRequest = (request: HttpClientRequest, url: URL): RecordedRequest => {
  const body = bodyOf(request)
  return body === undefined ? { method: request.method, url: url.toString() } : { method: request.method, url: url.toString(), body }
}

/** Sorted keys, routing fields left out: two bodies that ask the same thing have the same key. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, item: unknown) =>
    Predicate.isRecord(item) && !Array.isArray(item)
      ? Object.fromEntries(Object.keys(item).sort().map((key) => [key, item[key]]))
      : item) ?? ""

const matchKey = (request: RecordedRequest): string =>
  `${request.method} ${pathOf(request.url)} ${canonical(request.body === undefined ? null : fieldsOf(request.body))}`

const originOf = (url: string): string => {
  try {
    return new URL(url).origin
  } catch {
    return ""
  }
}

/** Reads and decodes a cassette; a bad line is named by its number. */
export const readCassette = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) =>
        new CassetteInvalid({ path, line: null, reason: error._tag === "SystemError" && error.reason === "NotFound" ? "it does not exist" : error.message })
      )
    )
    const exchanges: Array<CassetteExchange> = []
    for (const [index, line] of text.split("\n").entries()) {
      if (line.trim() === "") continue
      const decoded = yield* Schema.decodeUnknown(CassetteLineJson)(line).pipe(
        Effect.mapError((error) => new CassetteInvalid({ path, line: index + 1, reason: formatParseError(error) }))
      )
      if ("request" in decoded) exchanges.push(decoded)
    }
    if (exchanges.length === 0) return yield* new CassetteInvalid({ path, line: null, reason: "it holds no requests" })
    return exchanges
  })

interface ReplayState {
  /** Requests seen so far. */
  readonly served: number
  /** Which recorded exchanges have answered. */
  readonly used: ReadonlyArray<boolean>
}

/** The exchange that answers `actual` (or -1), and the state after it. */
const take = (exchanges: ReadonlyArray<CassetteExchange>, s: ReplayState, actual: RecordedRequest): readonly [number, ReplayState] => {
  const key = matchKey(actual)
  const origin = originOf(actual.url)
  const matching = exchanges.flatMap((exchange, i) => (matchKey(exchange.request) === key ? [i] : []))
  const preferOrigin = (indexes: ReadonlyArray<number>) =>
    indexes.find((i) => originOf(exchanges[i]?.request.url ?? "") === origin) ?? indexes[0]
  const unused = preferOrigin(matching.filter((i) => !s.used[i]))
  // A GET asks for what is there (models, props): it may be answered again.
  const again = actual.method === "GET" ? preferOrigin([...matching].reverse()) : undefined
  const index = unused ?? again ?? -1
  return [index, { served: s.served + 1, used: s.used.map((used, i) => used || i === index) }]
}

/**
 * Serves a cassette as the `HttpClient`. Needs no server: the bytes come from the file, and
 * everything above the transport (retries, SSE, decoding) runs as it does live.
 */
export const HttpClientReplay = (path: string): Layer.Layer<HttpClient.HttpClient, CassetteInvalid, FileSystem.FileSystem> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const exchanges = yield* readCassette(path)
      const state = yield* Ref.make<ReplayState>({ served: 0, used: exchanges.map(() => false) })

      /** The recorded request the diff compares with: the first unused one of the same method and path. */
      const nearest = (s: ReplayState, actual: RecordedRequest): RecordedRequest | null => {
        const unused = exchanges.filter((_, i) => !s.used[i]).map((exchange) => exchange.request)
        const samePath = unused.find((r) => r.method === actual.method && pathOf(r.url) === pathOf(actual.url))
        return samePath ?? unused[0] ?? null
      }

      return HttpClient.make((request, url) =>
        Effect.gen(function*() {
          const actual = recordedRequest(request, url)
          const before = yield* Ref.get(state)
          const index = yield* Ref.modify(state, (s) => take(exchanges, s, actual))
          const exchange = exchanges[index]
          if (exchange === undefined && actual.method === "GET") {
            // A probe the recording never made (its process had the answer already): not there.
            return HttpClientResponse.fromWeb(request, new Response(JSON.stringify({ error: { code: 404, message: `not in the cassette ${path}` } }), { status: 404 }))
          }
          if (exchange === undefined) {
            // Not a transport failure (which would be retried): the request cannot be served at all.
            return yield* new RequestError({
              request,
              reason: "Encode",
              cause: new CassetteMismatch({
                cassette: path,
                request: before.served + 1,
                expected: nearest(before, actual),
                actual,
                recorded: exchanges.length
              })
            })
          }
          const { body, headers, status } = exchange.response
          return HttpClientResponse.fromWeb(request, new Response(body, { status, headers }))
        })
      )
    })
  )

/**
 * Wraps the `HttpClient` below it and appends each exchange to `path` once its body has been
 * read (a streamed body passes through as it arrives). The file is appended to, never
 * truncated: delete it to start a new cassette.
 */
export const HttpClientRecord = (
  path: string
): Layer.Layer<HttpClient.HttpClient, CassetteWriteError, HttpClient.HttpClient | FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const inner = yield* HttpClient.HttpClient
      const fs = yield* FileSystem.FileSystem
      const dirname = (yield* Path.Path).dirname(path)
      const failed = (error: { readonly message: string }) => new CassetteWriteError({ path, reason: error.message })
      const lock = yield* Effect.makeSemaphore(1)
      const append = (line: CassetteLine) =>
        Schema.encode(CassetteLineJson)(line).pipe(
          Effect.orDie,
          Effect.flatMap((json) => fs.writeFileString(path, `${json}\n`, { flag: "a" })),
          Effect.mapError(failed),
          lock.withPermits(1)
        )
      const started = new Date(yield* Clock.currentTimeMillis).toISOString()
      yield* fs.makeDirectory(dirname, { recursive: true }).pipe(Effect.mapError(failed))
      yield* append({ session: started })

      /** A line that could not be written: the next request fails with it (a finalizer cannot). */
      const writeFailure = yield* Ref.make<CassetteWriteError | null>(null)

      return HttpClient.make((request, url) =>
        Effect.gen(function*() {
          const failure = yield* Ref.getAndSet(writeFailure, null)
          if (failure !== null) return yield* new RequestError({ request, reason: "Encode", cause: failure })
          const response = yield* inner.execute(request)
          const headers = Object.fromEntries(keptHeaders.flatMap((name) => {
            const value = response.headers[name]
            return value === undefined ? [] : [[name, value]]
          }))
          let text = ""
          const streaming = new TextDecoder()
          const record = Effect.suspend(() =>
            append({ request: recordedRequest(request, url), response: { status: response.status, headers, body: text + streaming.decode() } })
          )
          // Written when the reader is done: at the end of the body, or after the SSE `[DONE]`
          // (the reader stops there). A body cut off by a timeout or an error is not recorded.
          const body = response.stream.pipe(
            Stream.tap((bytes) => Effect.sync(() => { text += streaming.decode(bytes, { stream: true }) })),
            Stream.ensuringWith((exit) =>
              Exit.isSuccess(exit) || text.includes("data: [DONE]")
                ? Effect.catchAll(record, (error) => Ref.set(writeFailure, error))
                : Effect.void
            )
          )
          const readable = yield* Stream.toReadableStreamEffect(body)
          return HttpClientResponse.fromWeb(request, new Response(readable, { status: response.status, headers: response.headers }))
        })
      )
    })
  )

/** The cassette error a request failed with (a replay with no match, a recording that could not be written). */
export const cassetteErrorOf = (error: unknown): CassetteMismatch | CassetteWriteError | undefined => {
  const cause = Predicate.hasProperty(error, "cause") ? error.cause : undefined
  return cause instanceof CassetteMismatch || cause instanceof CassetteWriteError ? cause : undefined
}
