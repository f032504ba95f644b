/**
 * Cassettes: JSONL files of request/response pairs. The Record layer wraps another `Llm` and
 * appends every pair it serves; the Replay layer serves a cassette with no model at all and
 * fails with a diff-like `CassetteMismatch` on a request it did not record. `llmLayerFor`
 * turns the `--llm` option (`live`, `replay:<file>`, `record:<file>`) into one of them.
 */
import { FileSystem, type HttpClient, Path } from "@effect/platform"
import { Array as Arr, Data, Effect, Either, Layer, Ref, Schema, Stream } from "effect"
import { fromJsonText } from "../core/jsonText.ts"
import { formatParseError } from "../core/schemaIssues.ts"
import type { AppConfig } from "./Config.ts"
import {
  type Completion,
  CompletionRequest,
  lastUserMessage,
  Llm,
  LlmLive,
  type LlmShape,
  streamFromComplete,
  Usage
} from "./Llm.ts"
import type { Luallm } from "./Luallm.ts"

export const CassetteResponse = Schema.Struct({
  content: Schema.String,
  model: Schema.String,
  usage: Usage,
  /** As measured when recording; replay reports it and matching never looks at it. */
  latency_ms: Schema.optional(Schema.Number),
  notes: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
})

/** One line of a cassette. */
export const CassetteLine = Schema.Struct({ request: CompletionRequest, response: CassetteResponse })
export type CassetteLine = typeof CassetteLine.Type

const CassetteLineJson = fromJsonText(CassetteLine)

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

/** What differs between a recorded request and the one made now, one finding per line. */
export const requestDifferences = (expected: CompletionRequest, actual: CompletionRequest): ReadonlyArray<string> => {
  const found: Array<string> = []
  if (expected.model !== actual.model) found.push(`model: expected ${JSON.stringify(expected.model)}, got ${JSON.stringify(actual.model)}`)
  const count = Math.max(expected.messages.length, actual.messages.length)
  for (let i = 0; i < count; i++) {
    const want = expected.messages[i]
    const got = actual.messages[i]
    if (want === undefined && got !== undefined) {
      found.push(`messages[${i}]: the recording has ${expected.messages.length} messages, this request has a ${got.role} message more: ${excerptAround(got.content, 0)}`)
    } else if (got === undefined && want !== undefined) {
      found.push(`messages[${i}]: expected a ${want.role} message ${excerptAround(want.content, 0)}, this request has only ${actual.messages.length} messages`)
    } else if (want !== undefined && got !== undefined && want.role !== got.role) {
      found.push(`messages[${i}].role: expected ${want.role}, got ${got.role}`)
    } else if (want !== undefined && got !== undefined && want.content !== got.content) {
      const at = firstDifference(want.content, got.content)
      found.push(
        `messages[${i}] (${want.role}) differs at character ${at + 1}:\n    expected: ${excerptAround(want.content, at)}\n    actual:   ${excerptAround(got.content, at)}`
      )
    } else continue
    break
  }
  return found
}

const sameRequest = (expected: CompletionRequest, actual: CompletionRequest): boolean =>
  requestDifferences(expected, actual).length === 0

export class CassetteMismatch extends Data.TaggedError("CassetteMismatch")<{
  readonly cassette: string
  /** 1-based number of the request in this run. */
  readonly request: number
  /** The next recorded request not yet replayed; `null` when all were. */
  readonly expected: CompletionRequest | null
  readonly actual: CompletionRequest
  readonly recorded: number
}> {
  override get message() {
    const rerecord = `If the change is intended, record the cassette again with --llm record:${this.cassette}.`
    if (this.expected === null) {
      return `Request #${this.request} (model ${this.actual.model}, last user message ${excerptAround(lastUserMessage(this.actual), 0)}) is not in the cassette ${this.cassette}: its ${this.recorded} recorded requests have all been replayed. ${rerecord}`
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

export class LlmSpecInvalid extends Data.TaggedError("LlmSpecInvalid")<{ readonly spec: string }> {
  override get message() {
    return `--llm ${JSON.stringify(this.spec)} is not a choice: use live, replay:<cassette.jsonl> or record:<cassette.jsonl>.`
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
    const lines: Array<CassetteLine> = []
    for (const [index, line] of text.split("\n").entries()) {
      if (line.trim() === "") continue
      lines.push(
        yield* Schema.decodeUnknown(CassetteLineJson)(line).pipe(
          Effect.mapError((error) => new CassetteInvalid({ path, line: index + 1, reason: formatParseError(error) }))
        )
      )
    }
    if (!Arr.isNonEmptyReadonlyArray(lines)) return yield* new CassetteInvalid({ path, line: null, reason: "it holds no requests" })
    return lines
  })

interface ReplayState {
  /** Requests seen so far. */
  readonly served: number
  /** Which recorded pairs have answered. */
  readonly used: ReadonlyArray<boolean>
}

/**
 * Serves a cassette. Each recorded pair answers once; requests are matched in order, and a
 * request that matches a later unused pair exactly takes it (parallel nodes may ask in a
 * different order). `resolveModel` answers the model of the next recorded request.
 */
export const LlmReplay = (path: string): Layer.Layer<Llm, CassetteInvalid, FileSystem.FileSystem> =>
  Layer.effect(Llm, Effect.gen(function*() {
    const lines = yield* readCassette(path)
    const state = yield* Ref.make<ReplayState>({ served: 0, used: lines.map(() => false) })
    const nextUnused = Effect.map(Ref.get(state), (s) => lines[s.used.indexOf(false)])

    /** The pair that answers `request` (in order, else a later exact match), and the state after it. */
    const take = (s: ReplayState, request: CompletionRequest): readonly [Either.Either<CassetteLine, CassetteMismatch>, ReplayState] => {
      const served = s.served + 1
      const next = s.used.indexOf(false)
      const nextLine = lines[next]
      const index = nextLine !== undefined && sameRequest(nextLine.request, request)
        ? next
        : lines.findIndex((line, i) => !s.used[i] && sameRequest(line.request, request))
      const line = lines[index]
      if (line === undefined) {
        const expected = nextLine?.request ?? null
        return [
          Either.left(new CassetteMismatch({ cassette: path, request: served, expected, actual: request, recorded: lines.length })),
          { ...s, served }
        ]
      }
      return [Either.right(line), { served, used: s.used.map((used, i) => used || i === index) }]
    }

    const complete = Effect.fn("Llm.complete")(function*(request: CompletionRequest) {
      const { response } = yield* Effect.flatten(Ref.modify(state, (s) => take(s, request)))
      return { ...response, latency_ms: response.latency_ms ?? 0 } satisfies Completion
    })

    return Llm.of({
      complete,
      stream: streamFromComplete(complete),
      listModels: Effect.succeed({ source: `cassette ${path}`, models: [...new Set(lines.map((line) => line.request.model))] }),
      resolveModel: () => Effect.map(nextUnused, (line) => (line ?? Arr.lastNonEmpty(lines)).request.model)
    })
  }))

/**
 * Wraps the `Llm` below it and appends each answered request/response pair to `path`,
 * which starts empty (a cassette is one recorded session).
 */
export const LlmRecord = (path: string): Layer.Layer<Llm, CassetteWriteError, Llm | FileSystem.FileSystem | Path.Path> =>
  Layer.effect(Llm, Effect.gen(function*() {
    const inner = yield* Llm
    const fs = yield* FileSystem.FileSystem
    const dirname = (yield* Path.Path).dirname(path)
    const failed = (error: { readonly message: string }) => new CassetteWriteError({ path, reason: error.message })
    yield* fs.makeDirectory(dirname, { recursive: true }).pipe(Effect.zipRight(fs.writeFileString(path, "")), Effect.mapError(failed))
    const lock = yield* Effect.makeSemaphore(1)

    const append = (request: CompletionRequest, completion: Completion) =>
      Schema.encode(CassetteLineJson)({ request, response: completion }).pipe(
        Effect.orDie,
        Effect.flatMap((line) => fs.writeFileString(path, `${line}\n`, { flag: "a" })),
        Effect.mapError(failed),
        lock.withPermits(1)
      )

    return Llm.of({
      complete: (request) => Effect.tap(inner.complete(request), (completion) => append(request, completion)),
      stream: (request) =>
        inner.stream(request).pipe(Stream.tap((part) => (part._tag === "Done" ? append(request, part.completion) : Effect.void))),
      listModels: inner.listModels,
      resolveModel: inner.resolveModel
    } satisfies LlmShape)
  }))

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

/** The `Llm` layer for a `--llm` value. */
export const llmLayerFor = (spec: string): Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> =>
  Layer.unwrapEffect(
    Effect.map(parseLlmSpec(spec), (parsed): Layer.Layer<Llm, LlmLayerError, LlmLayerRequirements> => {
      switch (parsed._tag) {
        case "Live":
          return LlmLive
        case "Replay":
          return LlmReplay(parsed.path)
        case "Record":
          return LlmRecord(parsed.path).pipe(Layer.provide(LlmLive))
      }
    })
  )
