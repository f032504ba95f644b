import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { fromJsonText, isJson, jsonDepth, JsonValue, MAX_JSON_DEPTH, parseJsonText, previewValue } from "../../src/core/jsonText.ts"
import { SkillArgs } from "../../src/core/skillMeta.ts"

/** A value nested `depth` levels deep, alternating arrays and objects, built without recursion. */
const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value }
  return value
}

describe("parseJsonText", () => {
  it("parses ordinary JSON and reports the parser's reason for text that is not JSON", () => {
    expect(parseJsonText(`{"a": [1, "x", null]}`)).toEqual(Either.right({ a: [1, "x", null] }))
    const bad = Either.flip(parseJsonText(`{"a": }`))
    expect(Either.getOrElse(bad, () => "")).toMatch(/Unexpected token|not valid JSON/)
  })

  it("refuses 100000 opening brackets by the depth check, before JSON.parse, naming the limit", () => {
    const reason = Either.flip(parseJsonText("[".repeat(100_000)))
    expect(reason).toEqual(Either.right(`it nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels (at position ${MAX_JSON_DEPTH})`))
    const objects = `${`{"a":`.repeat(20_000)}1${"}".repeat(20_000)}`
    expect(Either.isLeft(parseJsonText(objects))).toBe(true)
  })

  it("accepts nesting up to the limit and does not count brackets inside strings", () => {
    const atLimit = `${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}`
    expect(Either.isRight(parseJsonText(atLimit))).toBe(true)
    expect(Either.isLeft(parseJsonText(`[${atLimit}]`))).toBe(true)
    const inString = JSON.stringify({ text: "[".repeat(10_000), quoted: `\\"[[[[` })
    expect(Either.isRight(parseJsonText(inString))).toBe(true)
  })
})

describe("JsonValue and SkillArgs", () => {
  it("decode a value nested 100000 deep as an issue, not a stack overflow", () => {
    const deep = nested(100_000)
    expect(isJson(deep)).toBe(false)
    expect(jsonDepth(deep)).toBe(MAX_JSON_DEPTH + 1)
    const decoded = Schema.decodeUnknownEither(JsonValue)(deep)
    expect(Either.isLeft(decoded)).toBe(true)
    if (Either.isLeft(decoded)) expect(decoded.left.message).toContain(`deeper than ${MAX_JSON_DEPTH} levels`)
    expect(Either.isLeft(Schema.decodeUnknownEither(SkillArgs)({ x: deep }))).toBe(true)
  })

  it("accept plain data and refuse what JSON cannot hold", () => {
    expect(isJson({ a: [1, "b", null, true, { c: -0.5 }] })).toBe(true)
    expect(isJson(nested(MAX_JSON_DEPTH - 1))).toBe(true)
    expect(isJson(Number.NaN)).toBe(false)
    expect(isJson({ f: () => 1 })).toBe(false)
    expect(isJson(new Date(0))).toBe(false)
    expect(isJson([undefined])).toBe(false)
  })
})

describe("fromJsonText", () => {
  const Point = Schema.Struct({ x: Schema.Number })

  it("decodes and encodes like Schema.parseJson", () => {
    expect(Schema.decodeUnknownSync(fromJsonText(Point))(`{"x": 1}`)).toEqual({ x: 1 })
    expect(Schema.encodeSync(fromJsonText(Point, { space: 2 }))({ x: 1 })).toBe(`{\n  "x": 1\n}`)
  })

  it("fails a too-deep text with the depth reason", () => {
    const decoded = Schema.decodeUnknownEither(fromJsonText(Point))(`{"x": ${"[".repeat(5000)}`)
    expect(Either.isLeft(decoded)).toBe(true)
    if (Either.isLeft(decoded)) expect(decoded.left.message).toContain(`deeper than ${MAX_JSON_DEPTH} levels`)
  })
})

describe("previewValue", () => {
  it("renders small values as compact JSON and undefined as nothing", () => {
    expect(previewValue([1])).toBe("[1]")
    expect(previewValue("ten")).toBe(`"ten"`)
    expect(previewValue({ a: 1, b: [true, null] })).toBe(`{"a":1,"b":[true,null]}`)
    expect(previewValue(undefined)).toBe("nothing")
  })

  it("stays short for any depth or size", () => {
    expect(previewValue(nested(100_000))).toBe(`{"a":[{"a":[…]}]}`)
    expect(previewValue("x".repeat(10_000)).length).toBeLessThanOrEqual(80)
    expect(previewValue(Array.from({ length: 1000 }, (_, i) => i))).toBe("[0,1,2,3,4,5,6,7,…]")
  })
})
