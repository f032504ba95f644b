import { describe, expect, it } from "@effect/vitest"
import { FastCheck, Option } from "effect"
import { argKind } from "../../src/core/skillMeta.ts"
import { interpolate, interpolateArgs, interpolateValue, isNodeId, type Results, templateReferences, valueReferences } from "../../src/core/template.ts"

const resultsOf = (entries: Record<string, unknown>): Results => (id) =>
  Object.hasOwn(entries, id) ? Option.some(entries[id]) : Option.none()

describe("interpolate", () => {
  it("puts string results in as they are and other results as JSON", () => {
    const results = resultsOf({ text: "hello", count: 3, list: [1, "a"], data: { ok: true }, nothing: null })
    expect(interpolate("{text}|{count}|{list}|{data}|{nothing}", results)).toBe(
      `hello|3|[1,"a"]|{"ok":true}|null`
    )
  })

  it("writes a literal brace for {{, so {{id} is the text {id}", () => {
    expect(interpolate("{{a} and {{{a}", resultsOf({ a: "A" }))).toBe("{a} and {A")
  })

  it("leaves JSON examples alone, including their closing braces", () => {
    const example = `Answer like {"name": "x", "tags": {"a": 1}} using { a } and {}`
    expect(interpolate(`${example}: {a}`, resultsOf({ a: "A" }))).toBe(`${example}: A`)
  })

  it("leaves a reference without a result as written", () => {
    expect(interpolate("see {missing}", resultsOf({}))).toBe("see {missing}")
  })

  it("does not re-read braces that come from an interpolated result", () => {
    expect(interpolate("{a}", resultsOf({ a: "{b}", b: "B" }))).toBe("{b}")
  })

  const withoutBraces = FastCheck.string().filter((text) => !text.includes("{"))
  it.prop("returns a template without braces unchanged", [withoutBraces], ([text]) => {
    expect(interpolate(text, resultsOf({ a: "A" }))).toBe(text)
  })
})

describe("templateReferences", () => {
  it("lists each referenced id once, in order, skipping escaped braces and JSON", () => {
    expect(templateReferences(`{b} {a} {b} {{c} {"d": 1} {e-1} {f_2}`)).toEqual(["b", "a", "e-1", "f_2"])
  })

  it("finds nothing in a template without references", () => {
    expect(templateReferences("plain { text }")).toEqual([])
  })
})

describe("isNodeId", () => {
  it("accepts letters, digits, _ and - and rejects everything else", () => {
    expect(["fetch", "step_2", "a-b", "1"].every(isNodeId)).toBe(true)
    expect(["", "my node", "a.b", "x}", "{x"].some(isNodeId)).toBe(false)
  })
})

describe("interpolateValue", () => {
  const results: Results = (id) => (id === "rows" ? Option.some([{ a: 1 }]) : id === "name" ? Option.some("Ann") : Option.none())

  it("puts a whole-string reference in as the result value, not its JSON text", () => {
    expect(interpolateValue({ data: "{rows}" }, results)).toEqual({ data: [{ a: 1 }] })
  })

  it("interpolates references inside longer strings, nested objects and arrays, and leaves other values alone", () => {
    expect(interpolateValue({ title: "Hi {name}", list: ["{name}!", 3, null], deep: { n: "{rows}x" } }, results)).toEqual({
      title: "Hi Ann",
      list: ["Ann!", 3, null],
      deep: { n: "[{\"a\":1}]x" }
    })
  })

  it("lists every reference in a value once", () => {
    expect(valueReferences({ a: "{x} {y}", b: ["{x}"], c: { d: "{z}" }, e: 1 })).toEqual(["x", "y", "z"])
  })
})

describe("interpolateArgs", () => {
  const results: Results = (id) => (id === "stats" ? Option.some({ min: 1, max: 4 }) : id === "n" ? Option.some(42) : Option.none())

  it("gives a text argument a whole reference's result as its JSON text, and every other argument the value itself", () => {
    const takesText = (arg: string) => arg === "content" || arg === "label"
    expect(interpolateArgs({ content: "{stats}", label: "{n}", rows: "{stats}", note: "max {stats}", missing: "{nope}" }, results, takesText)).toEqual({
      content: `{"min":1,"max":4}`,
      label: "42",
      rows: { min: 1, max: 4 },
      note: `max {"min":1,"max":4}`,
      missing: "{nope}"
    })
  })
})

describe("argKind", () => {
  it.each([
    ["string: the file", "string"],
    ["boolean, default true: replace it", "boolean"],
    ["array of strings, default []", "array"],
    ["number", "number"],
    ["object: the options", "object"],
    ["the file to read", null]
  ] as const)("reads %j as %s", (description, kind) => {
    expect(argKind(description)).toBe(kind)
  })
})
