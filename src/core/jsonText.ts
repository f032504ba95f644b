/**
 * JSON that comes from outside — config files, `--args`, approval and state files, cassettes,
 * a server's answers, skill headers — is parsed only here. Its nesting depth is checked by a
 * linear scan BEFORE `JSON.parse`, so no input can make a later recursive step (a Schema
 * decode, a message that prints the value, a merge) exhaust the stack: deep input is an
 * ordinary "nested deeper than N levels" problem, never a `RangeError`.
 */
import { Either, ParseResult, Schema } from "effect"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }
export type JsonObject = { readonly [key: string]: Json }

/** The deepest nesting of arrays and objects accepted from outside; real data stays far below it. */
export const MAX_JSON_DEPTH = 512

/** The offset of the bracket that opens level `limit + 1` (outside strings), or -1 if none does. */
const tooDeepAt = (text: string, limit: number): number => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return i
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return -1
}

const tooDeep = (limit: number) => `it nests arrays and objects deeper than ${limit} levels`

/**
 * Why JSON text nests deeper than the agent reads back (a saved task, an audit line), in words
 * ending with the position; undefined when it does not. Counts brackets only: no parse.
 */
export const tooDeepIn = (text: string, limit: number = MAX_JSON_DEPTH): string | undefined => {
  const at = tooDeepAt(text, limit)
  return at === -1 ? undefined : `${tooDeep(limit)} (at position ${at})`
}

/**
 * Parses JSON text from outside. The left side is the reason, in words: the parser's own
 * message (`Unexpected token } in JSON at position 41`) or the depth limit.
 */
export const parseJsonText = (text: string, limit: number = MAX_JSON_DEPTH): Either.Either<unknown, string> => {
  const deep = tooDeepIn(text, limit)
  if (deep !== undefined) return Either.left(deep)
  return Either.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => error instanceof Error ? error.message : String(error)
  })
}

/** How deep a parsed value nests, counted without recursion; stops once past `limit`. */
export const jsonDepth = (value: unknown, limit: number = MAX_JSON_DEPTH): number => {
  let deepest = 0
  const pending: Array<readonly [unknown, number]> = [[value, 0]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [current, depth] = next
    if (typeof current !== "object" || current === null) continue
    const level = depth + 1
    if (level > deepest) deepest = level
    if (deepest > limit) return deepest
    for (const child of Object.values(current)) pending.push([child, level])
  }
  return deepest
}

const isPlainObject = (value: object): boolean => {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Whether `value` is plain JSON data no deeper than `limit`, checked without recursion. */
export const isJson = (value: unknown, limit: number = MAX_JSON_DEPTH): value is Json => {
  const pending: Array<readonly [unknown, number]> = [[value, 0]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [current, depth] = next
    if (current === null || typeof current === "string" || typeof current === "boolean") continue
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return false
      continue
    }
    if (typeof current !== "object" || depth >= limit) return false
    if (!Array.isArray(current) && !isPlainObject(current)) return false
    for (const child of Object.values(current)) pending.push([child, depth + 1])
  }
  return true
}

/**
 * A JSON value: what a skill receives and returns. Checked by a loop rather than a recursive
 * schema, so a value nested thousands deep fails as an issue instead of overflowing the stack.
 */
export const JsonValue: Schema.Schema<Json> = Schema.declare((value: unknown): value is Json => isJson(value), {
  identifier: "JsonValue",
  message: (issue) =>
    jsonDepth(issue.actual) > MAX_JSON_DEPTH
      ? `expected JSON data, but ${tooDeep(MAX_JSON_DEPTH)}`
      : `expected JSON data (null, true/false, numbers, strings, arrays, objects), got ${previewValue(issue.actual)}`
})

/** JSON text → unknown, through `parseJsonText` (the depth check first); encodes with `JSON.stringify`. */
const JsonText = (options: { readonly space?: number } = {}) =>
  Schema.transformOrFail(Schema.String, Schema.Unknown, {
    strict: true,
    decode: (text, _, ast) =>
      Either.mapLeft(parseJsonText(text), (reason) => new ParseResult.Type(ast, text, reason)),
    encode: (value, _, ast) =>
      ParseResult.try({
        try: () => JSON.stringify(value, null, options.space),
        catch: (error) => new ParseResult.Type(ast, value, error instanceof Error ? error.message : String(error))
      })
  })

/**
 * `Schema.parseJson(schema)` for text from outside: the same decode, but with the depth check
 * before `JSON.parse`. Every file and argument the agent reads as JSON goes through this.
 */
export const fromJsonText = <A, I, R>(schema: Schema.Schema<A, I, R>, options: { readonly space?: number } = {}) =>
  Schema.compose(JsonText(options), schema, { strict: false })

/**
 * A short, bounded rendering of a value for a message ("expected …, got [1]"): JSON for small
 * values, cut with `…` past a few levels or characters, safe for any depth or size.
 */
export const previewValue = (value: unknown): string => {
  if (value === undefined) return "nothing"
  const out = render(value, 0)
  return out.length > PREVIEW_CHARS ? `${out.slice(0, PREVIEW_CHARS - 1)}…` : out
}

const PREVIEW_CHARS = 80
const PREVIEW_LEVELS = 3
const PREVIEW_ITEMS = 8

const render = (value: unknown, level: number): string => {
  if (typeof value === "string") return JSON.stringify(value.length > PREVIEW_CHARS ? `${value.slice(0, PREVIEW_CHARS)}…` : value)
  if (typeof value !== "object" || value === null) return String(value)
  const isArray = Array.isArray(value)
  if (level >= PREVIEW_LEVELS) return isArray ? "[…]" : "{…}"
  const entries = Object.entries(value)
  const shown = entries.slice(0, PREVIEW_ITEMS).map(([key, child]) =>
    isArray ? render(child, level + 1) : `${JSON.stringify(key)}:${render(child, level + 1)}`
  )
  const more = entries.length > PREVIEW_ITEMS ? [",…"] : []
  return isArray ? `[${shown.join(",")}${more.join("")}]` : `{${shown.join(",")}${more.join("")}}`
}
