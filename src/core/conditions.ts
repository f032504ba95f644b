/**
 * The condition language of decision nodes. Conditions come from the model, so they are
 * tokenized, parsed into an `Ast` and interpreted here — never handed to `eval`.
 *
 *   condition  := or
 *   or         := and (("or" | "||") and)*
 *   and        := not (("and" | "&&") not)*
 *   not        := ("not" | "!") not | comparison
 *   comparison := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "starts_with"
 *                         | "ends_with") value)?
 *   value      := number | "text" | 'text' | true | false | null | result | {node_id}
 *               | length | length "(" condition ")" | "(" condition ")"
 *
 * `result` is the result of the decision's first dependency and bare `length` is
 * `length(result)`. Results are JSON; a number compares equal to a string holding that number,
 * because what a model returns is text.
 */
import { Data, Either, Option, Predicate } from "effect"
import { isNodeId, type Results } from "./template.ts"

/** A parse or evaluation error; `position` is the 0-based offset in the condition text. */
export class ConditionError extends Data.TaggedError("ConditionError")<{
  readonly message: string
  readonly position: number
}> {}

type Literal = string | number | boolean | null
type Comparison = "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "starts_with" | "ends_with"

export type Ast =
  | { readonly _tag: "Literal"; readonly value: Literal; readonly position: number }
  | { readonly _tag: "Result"; readonly position: number }
  | { readonly _tag: "Reference"; readonly id: string; readonly position: number }
  | { readonly _tag: "Length"; readonly of: Ast; readonly position: number }
  | { readonly _tag: "Not"; readonly operand: Ast; readonly position: number }
  | {
    readonly _tag: "Logical"
    readonly operator: "and" | "or"
    readonly left: Ast
    readonly right: Ast
    readonly position: number
  }
  | {
    readonly _tag: "Compare"
    readonly operator: Comparison
    readonly left: Ast
    readonly right: Ast
    readonly position: number
  }

const fail = (position: number, problem: string) =>
  Either.left(new ConditionError({ message: `${problem} at position ${position}`, position }))

// ---------------------------------------------------------------------------------------------
// Tokens

type Token =
  | { readonly kind: "literal"; readonly value: Literal; readonly position: number }
  | { readonly kind: "reference"; readonly id: string; readonly position: number }
  | { readonly kind: "symbol"; readonly text: string; readonly position: number }
  | { readonly kind: "end"; readonly position: number }

type Tokenized = Either.Either<ReadonlyArray<Token>, ConditionError>

const comparisons: ReadonlySet<string> = new Set<Comparison>(
  ["==", "!=", "<", "<=", ">", ">=", "contains", "starts_with", "ends_with"]
)
const isComparison = (text: string): text is Comparison => comparisons.has(text)
const keywords: ReadonlySet<string> = new Set([...comparisons, "result", "length", "and", "or", "not"])
const symbolAliases = new Map([["&&", "and"], ["||", "or"], ["!", "not"]])
const escapes = new Map([["n", "\n"], ["t", "\t"], ["r", "\r"]])

const unquote = (quoted: string): string =>
  quoted.slice(1, -1).replace(/\\(.)/g, (_, char: string) => escapes.get(char) ?? char)

const word = (text: string, position: number): Tokenized => {
  if (text === "true" || text === "false" || text === "null") {
    return Either.right([{ kind: "literal", value: text === "null" ? null : text === "true", position }])
  }
  return keywords.has(text) ?
    Either.right([{ kind: "symbol", text, position }]) :
    fail(position, `unknown word "${text}" (write a node's result as {${text}} and text in quotes)`)
}

const reference = (text: string, position: number): Tokenized => {
  const id = text.slice(1, -1)
  return isNodeId(id) ?
    Either.right([{ kind: "reference", id, position }]) :
    fail(position, `${text} is not a node reference (write {node_id} with the id of a node)`)
}

/** Tried in order at each position; sticky (`y`) so a rule only matches right there. */
const rules: ReadonlyArray<readonly [RegExp, (text: string, position: number) => Tokenized]> = [
  [/\s+/y, () => Either.right([])],
  [/-?\d+(?:\.\d+)?/y, (text, position) => Either.right([{ kind: "literal", value: Number(text), position }])],
  [/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/y, (text, position) =>
    Either.right([{ kind: "literal", value: unquote(text), position }])],
  [/\{[^}]*\}/y, reference],
  [/[A-Za-z_]\w*/y, word],
  [/==|!=|<=|>=|&&|\|\||[<>!()]/y, (text, position) =>
    Either.right([{ kind: "symbol", text: symbolAliases.get(text) ?? text, position }])]
]

const unexpectedCharacter = (char: string, position: number) =>
  fail(
    position,
    char === "=" ?
      `unexpected "=" (compare with ==)` :
      char === "\"" || char === "'" ?
      "unterminated text (close it with the same quote)" :
      `unexpected character ${JSON.stringify(char)}`
  )

const tokenize = (text: string): Tokenized => {
  const tokens: Array<Token> = []
  let position = 0
  while (position < text.length) {
    const match = matchRule(text, position)
    if (match === undefined) return unexpectedCharacter(text.charAt(position), position)
    const [length, produced] = match
    if (Either.isLeft(produced)) return produced
    tokens.push(...produced.right)
    position += length
  }
  return Either.right(tokens)
}

const matchRule = (text: string, position: number): readonly [number, Tokenized] | undefined => {
  for (const [pattern, toTokens] of rules) {
    pattern.lastIndex = position
    const matched = pattern.exec(text)?.[0]
    if (matched !== undefined) return [matched.length, toTokens(matched, position)]
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent, one function per grammar rule)

type Parsed = Either.Either<Ast, ConditionError>

const describeToken = (token: Token): string => {
  switch (token.kind) {
    case "literal":
      return JSON.stringify(token.value)
    case "reference":
      return `{${token.id}}`
    case "symbol":
      return `"${token.text}"`
    case "end":
      return "the end of the condition"
  }
}

const parseTokens = (tokens: ReadonlyArray<Token>, length: number): Parsed => {
  let index = 0
  const peek = (): Token => tokens[index] ?? { kind: "end", position: length }
  const next = (): Token => {
    const token = peek()
    index++
    return token
  }
  const isSymbol = (token: Token, text: string) => token.kind === "symbol" && token.text === text
  const unexpected = (token: Token, expected: string) =>
    fail(token.position, `expected ${expected}, found ${describeToken(token)}`)

  const logical = (operator: "and" | "or", operand: () => Parsed): Parsed =>
    Either.gen(function*() {
      let left = yield* operand()
      while (isSymbol(peek(), operator)) {
        const { position } = next()
        left = { _tag: "Logical", operator, left, right: yield* operand(), position }
      }
      return left
    })
  const or = (): Parsed => logical("or", and)
  const and = (): Parsed => logical("and", not)
  const not = (): Parsed => {
    if (!isSymbol(peek(), "not")) return comparison()
    const { position } = next()
    return Either.map(not(), (operand): Ast => ({ _tag: "Not", operand, position }))
  }
  const comparison = (): Parsed =>
    Either.gen(function*() {
      const left = yield* value()
      const operator = peek()
      if (operator.kind !== "symbol" || !isComparison(operator.text)) return left
      next()
      const right = yield* value()
      return { _tag: "Compare", operator: operator.text, left, right, position: operator.position }
    })
  const parenthesised = (): Parsed =>
    Either.gen(function*() {
      const inner = yield* or()
      const close = next()
      return isSymbol(close, ")") ? inner : yield* unexpected(close, `")"`)
    })
  const value = (): Parsed => {
    const token = next()
    const { position } = token
    switch (token.kind) {
      case "literal":
        return Either.right({ _tag: "Literal", value: token.value, position })
      case "reference":
        return Either.right({ _tag: "Reference", id: token.id, position })
      case "end":
        return unexpected(token, "a value")
      case "symbol":
        if (token.text === "(") return parenthesised()
        if (token.text === "result") return Either.right({ _tag: "Result", position })
        if (token.text !== "length") return unexpected(token, "a value")
        if (!isSymbol(peek(), "(")) return Either.right({ _tag: "Length", of: { _tag: "Result", position }, position })
        next()
        return Either.map(parenthesised(), (of): Ast => ({ _tag: "Length", of, position }))
    }
  }

  return Either.gen(function*() {
    const ast = yield* or()
    const rest = peek()
    return rest.kind === "end" ? ast : yield* unexpected(rest, "and, or, or the end of the condition")
  })
}

/** Parses a condition; the error says what was expected and where. */
export const parseCondition = (text: string): Parsed =>
  Either.flatMap(tokenize(text), (tokens) => parseTokens(tokens, text.length))

// ---------------------------------------------------------------------------------------------
// Queries

const subtrees = (ast: Ast): ReadonlyArray<Ast> => {
  switch (ast._tag) {
    case "Literal":
    case "Result":
    case "Reference":
      return [ast]
    case "Length":
      return [ast, ...subtrees(ast.of)]
    case "Not":
      return [ast, ...subtrees(ast.operand)]
    case "Logical":
    case "Compare":
      return [ast, ...subtrees(ast.left), ...subtrees(ast.right)]
  }
}

/** The node ids written as `{id}`, each once, in order of appearance. */
export const referencedNodes = (ast: Ast): ReadonlyArray<string> =>
  Array.from(new Set(subtrees(ast).flatMap((node) => node._tag === "Reference" ? [node.id] : [])))

/** Whether the condition reads `result` (also implicitly, through a bare `length`). */
export const usesResult = (ast: Ast): boolean => subtrees(ast).some((node) => node._tag === "Result")

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface ConditionContext {
  /** The result of the decision's first dependency. */
  readonly result: unknown
  readonly results: Results
}

type Evaluated = Either.Either<unknown, ConditionError>

const typeName = (value: unknown): string =>
  value === null ?
    "null" :
    Array.isArray(value) ?
    "an array" :
    typeof value === "object" ?
    "an object" :
    `a ${typeof value}`

const toNumber = (value: unknown): unknown =>
  typeof value === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value

/** Both sides as numbers, when both are numbers or one is a number and the other numeric text. */
const asNumbers = (left: unknown, right: unknown): Option.Option<readonly [number, number]> => {
  if (typeof left !== "number" && typeof right !== "number") return Option.none()
  const [a, b] = [toNumber(left), toNumber(right)]
  return typeof a === "number" && typeof b === "number" ? Option.some([a, b]) : Option.none()
}

const jsonEquals = (left: unknown, right: unknown): boolean => {
  if (left === right) return true
  if (Array.isArray(left) && Array.isArray(right)) {
    return left.length === right.length && left.every((item, i) => jsonEquals(item, right[i]))
  }
  if (Predicate.isRecord(left) && Predicate.isRecord(right)) {
    const keys = Object.keys(left)
    return keys.length === Object.keys(right).length &&
      keys.every((key) => Object.hasOwn(right, key) && jsonEquals(left[key], right[key]))
  }
  return false
}

const equals = (left: unknown, right: unknown): boolean =>
  Option.match(asNumbers(left, right), { onNone: () => jsonEquals(left, right), onSome: ([a, b]) => a === b })

/** Negative, zero or positive like a comparator; `None` when the two cannot be ordered. */
const order = (left: unknown, right: unknown): Option.Option<number> => {
  const numbers = asNumbers(left, right)
  if (Option.isSome(numbers)) return Option.some(numbers.value[0] - numbers.value[1])
  return typeof left === "string" && typeof right === "string" ?
    Option.some(left < right ? -1 : left > right ? 1 : 0) :
    Option.none()
}

const orderings: Readonly<Record<"<" | "<=" | ">" | ">=", (sign: number) => boolean>> = {
  "<": (sign) => sign < 0,
  "<=": (sign) => sign <= 0,
  ">": (sign) => sign > 0,
  ">=": (sign) => sign >= 0
}

const compare = (operator: Comparison, left: unknown, right: unknown, position: number): Evaluated => {
  const cannot = () => fail(position, `cannot use "${operator}" on ${typeName(left)} and ${typeName(right)}`)
  const onText = (test: (text: string, part: string) => boolean) =>
    typeof left === "string" && typeof right === "string" ? Either.right(test(left, right)) : cannot()
  switch (operator) {
    case "==":
      return Either.right(equals(left, right))
    case "!=":
      return Either.right(!equals(left, right))
    case "contains":
      return Array.isArray(left) ?
        Either.right(left.some((item) => equals(item, right))) :
        onText((text, part) => text.includes(part))
    case "starts_with":
      return onText((text, part) => text.startsWith(part))
    case "ends_with":
      return onText((text, part) => text.endsWith(part))
    default:
      return Option.match(order(left, right), {
        onNone: cannot,
        onSome: (sign) => Either.right(orderings[operator](sign))
      })
  }
}

const lengthOf = (value: unknown, position: number): Evaluated =>
  typeof value === "string" || Array.isArray(value) ?
    Either.right(value.length) :
    Predicate.isRecord(value) ?
    Either.right(Object.keys(value).length) :
    fail(position, `length needs text, an array or an object, got ${typeName(value)}`)

const asBoolean = (value: unknown, position: number, what: string): Either.Either<boolean, ConditionError> =>
  typeof value === "boolean" ?
    Either.right(value) :
    fail(position, `${what} needs true or false, got ${typeName(value)}`)

/** Evaluates a parsed condition to a JSON value. */
export const evaluate = (ast: Ast, context: ConditionContext): Evaluated => {
  const truth = (operand: Ast, what: string) =>
    Either.flatMap(evaluate(operand, context), (value) => asBoolean(value, operand.position, what))
  switch (ast._tag) {
    case "Literal":
      return Either.right(ast.value)
    case "Result":
      return Either.right(context.result ?? null)
    case "Reference":
      return Option.match(context.results(ast.id), {
        onNone: () => fail(ast.position, `there is no result for {${ast.id}}`),
        onSome: (value) => Either.right(value ?? null)
      })
    case "Length":
      return Either.flatMap(evaluate(ast.of, context), (value) => lengthOf(value, ast.position))
    case "Not":
      return Either.map(truth(ast.operand, `"not"`), (value) => !value)
    case "Logical":
      // Short-circuits: `false and …` / `true or …` never evaluate the right side, so
      // `{a} != null and {a} contains "x"` does not fail on a null result.
      return Either.flatMap(truth(ast.left, `"${ast.operator}"`), (left) =>
        left === (ast.operator === "or") ? Either.right(left) : truth(ast.right, `"${ast.operator}"`))
    case "Compare":
      return Either.gen(function*() {
        const left = yield* evaluate(ast.left, context)
        const right = yield* evaluate(ast.right, context)
        return yield* compare(ast.operator, left, right, ast.position)
      })
  }
}

/** Evaluates a condition that must come out true or false, as a decision needs. */
export const evaluateCondition = (ast: Ast, context: ConditionContext): Either.Either<boolean, ConditionError> =>
  Either.flatMap(evaluate(ast, context), (value) => asBoolean(value, ast.position, "a condition"))
