import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck, Option } from "effect"
import {
  type ConditionContext,
  evaluate,
  evaluateCondition,
  parseCondition,
  referencedNodes,
  usesResult
} from "../../src/core/conditions.ts"

const context = (result: unknown, results: Record<string, unknown> = {}): ConditionContext => ({
  result,
  results: (id) => Object.hasOwn(results, id) ? Option.some(results[id]) : Option.none()
})

const check = (text: string, ctx: ConditionContext) =>
  Either.flatMap(parseCondition(text), (ast) => evaluateCondition(ast, ctx))

const parseError = (text: string) => Either.getLeft(parseCondition(text)).pipe(Option.getOrThrow)

describe("parseCondition and evaluateCondition", () => {
  const ctx = context("Hello, world", { count: 7, tags: ["a", "b"], data: { x: 1, y: 2 }, answer: " 42 ", ok: true })

  it.each([
    ["length > 5", true],
    ["length == 12", true],
    ["length({tags}) == 2", true],
    ["length({data}) == 2", true],
    ["length(\"abc\") == 3", true],
    ["result contains \"world\"", true],
    ["result contains 'planet'", false],
    ["result starts_with \"Hello\"", true],
    ["result ends_with \"!\"", false],
    ["{tags} contains \"b\"", true],
    ["{count} >= 7 and {count} < 8", true],
    ["{count} != 7 or {ok}", true],
    ["not {ok}", false],
    ["!{ok} || {count} == 7", true],
    ["{ok} && !({count} > 10)", true],
    ["not {ok} and false or true", true],
    ["not ({ok} and false or true)", false],
    ["{answer} == 42", true],
    ["{answer} > 41.5", true],
    ["{answer} == \"42\"", false],
    ["\"b\" > \"a\"", true],
    ["-1 < 0", true],
    ["{data} == {data}", true],
    ["null == null", true],
    ["result != null", true],
    ["'it\\'s' == \"it's\"", true]
  ] as const)("%s is %s", (text, expected) => {
    expect(check(text, ctx)).toEqual(Either.right(expected))
  })

  it("binds and tighter than or, and not tighter than and", () => {
    const ast = Either.getOrThrow(parseCondition("not true and false or true"))
    expect(ast).toMatchObject({
      _tag: "Logical",
      operator: "or",
      left: { _tag: "Logical", operator: "and", left: { _tag: "Not" } }
    })
  })

  it.prop(
    "orders integers like numbers",
    [FastCheck.integer({ min: -1000, max: 1000 }), FastCheck.integer({ min: -1000, max: 1000 })],
    ([a, b]) => {
      expect(check(`${a} < ${b}`, context(null))).toEqual(Either.right(a < b))
      expect(check(`${a} >= ${b}`, context(null))).toEqual(Either.right(a >= b))
    }
  )

  it.prop("never throws on arbitrary text: it parses or returns an error", [FastCheck.string()], ([text]) => {
    expect(Either.isEither(parseCondition(text))).toBe(true)
  })
})

describe("parse errors", () => {
  it.each([
    ["", 0, "expected a value, found the end of the condition at position 0"],
    ["length > ", 9, "expected a value, found the end of the condition at position 9"],
    ["length >> 3", 8, "expected a value, found \">\" at position 8"],
    ["result = 3", 7, "unexpected \"=\" (compare with ==) at position 7"],
    ["result contains \"abc", 16, "unterminated text (close it with the same quote) at position 16"],
    ["(length > 3", 11, "expected \")\", found the end of the condition at position 11"],
    ["length > 3 length", 11, "expected and, or, or the end of the condition, found \"length\" at position 11"],
    [
      "summary contains \"x\"",
      0,
      "unknown word \"summary\" (write a node's result as {summary} and text in quotes) at position 0"
    ],
    ["{my node} == 1", 0, "{my node} is not a node reference (write {node_id} with the id of a node) at position 0"],
    ["result == 1 # 2", 12, "unexpected character \"#\" at position 12"]
  ] as const)("%j fails at position %i", (text, position, message) => {
    const error = parseError(text)
    expect(error._tag).toBe("ConditionError")
    expect(error.position).toBe(position)
    expect(error.message).toBe(message)
  })
})

describe("evaluation errors", () => {
  const failure = (text: string, ctx: ConditionContext) => Either.getLeft(check(text, ctx)).pipe(Option.getOrThrow)

  it("refuses to order values of different kinds, naming the operator and where it is", () => {
    const error = failure("{list} < 3", context(null, { list: [1] }))
    expect(error.message).toBe("cannot use \"<\" on an array and a number at position 7")
    expect(error.position).toBe(7)
  })

  it("needs text, an array or an object for length", () => {
    expect(failure("length > 1", context(5)).message).toBe(
      "length needs text, an array or an object, got a number at position 0"
    )
  })

  it("reports a reference without a result", () => {
    expect(failure("{later} == 1", context(null)).message).toBe("there is no result for {later} at position 0")
  })

  it("needs a condition to come out true or false", () => {
    expect(failure("length", context("abc")).message)
      .toBe("a condition needs true or false, got a number at position 0")
    expect(failure("not result", context("abc")).message)
      .toBe("\"not\" needs true or false, got a string at position 4")
  })

  it("does not evaluate the right side when the left side decides", () => {
    expect(check("false and {missing} == 1", context(null))).toEqual(Either.right(false))
    expect(check("true or {missing} == 1", context(null))).toEqual(Either.right(true))
  })

  it("evaluates to plain values outside of a condition", () => {
    const ast = Either.getOrThrow(parseCondition("length({items})"))
    expect(evaluate(ast, context(null, { items: [1, 2, 3] }))).toEqual(Either.right(3))
  })
})

describe("referencedNodes and usesResult", () => {
  it("lists each {id} once, in order", () => {
    const ast = Either.getOrThrow(parseCondition("{b} > 1 and length({a}) > {b} or result == {c}"))
    expect(referencedNodes(ast)).toEqual(["b", "a", "c"])
  })

  it("sees result also behind a bare length", () => {
    expect(usesResult(Either.getOrThrow(parseCondition("length > 3")))).toBe(true)
    expect(usesResult(Either.getOrThrow(parseCondition("length({a}) > 3")))).toBe(false)
  })
})
