/**
 * Parsing a model's answer, which is untrusted text: models wrap code in markdown fences,
 * open with "Here is the code:" and close with a paragraph about it, even when told not to.
 * Small named steps, each testable alone; the JSON extraction for plans joins them here.
 */
import { Either, Predicate } from "effect"
import { parseJsonText } from "./jsonText.ts"

/**
 * A reasoning model's thinking, when the server leaves it in the answer (`<think>…</think>` at
 * the start, or everything up to a lone `</think>` when the opening tag was in the prompt): not
 * part of what it answers.
 */
export const stripThinking = (text: string): string => {
  const closed = /^\s*<(think|thinking)>[\s\S]*?<\/\1>/.exec(text)
  if (closed !== null) return text.slice(closed[0].length)
  const lone = /^[^<]*?<\/(think|thinking)>/.exec(text)
  return lone === null ? text : text.slice(lone[0].length)
}

/** A fenced block: its info string (` ```js ` → `js`) and its lines without the fences. */
export interface FencedBlock {
  readonly info: string
  readonly body: string
  /** False when the answer ended before the closing fence (e.g. cut off at max_tokens). */
  readonly closed: boolean
}

const OPENING_FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/

const isClosingFence = (line: string, fence: string): boolean => {
  const trimmed = line.trim()
  return trimmed.length >= fence.length && trimmed === fence.charAt(0).repeat(trimmed.length)
}

const linesOf = (text: string): Array<string> => text.split(/\r?\n/)

/** Every fenced block in `text`, in order; an unclosed last block runs to the end. */
export const fencedBlocks = (text: string): ReadonlyArray<FencedBlock> => {
  const blocks: Array<FencedBlock> = []
  const lines = linesOf(text)
  let i = 0
  while (i < lines.length) {
    const opening = OPENING_FENCE.exec(lines[i] ?? "")
    i++
    if (opening === null) continue
    const fence = opening[1] ?? "```"
    const body: Array<string> = []
    let closed = false
    for (; i < lines.length && !closed; i++) {
      const line = lines[i] ?? ""
      if (isClosingFence(line, fence)) closed = true
      else body.push(line)
    }
    blocks.push({ info: (opening[2] ?? "").toLowerCase(), body: body.join("\n"), closed })
  }
  return blocks
}

/** Characters and line openings that prose does not have and code does. */
const CODE_MARK = /[;{}=<>]|^\s*(\/\/|\/\*|\*|#|--|@)/

/**
 * A paragraph of prose rather than code: it opens like a sentence (a capital letter), ends
 * like one (`:`, `.`, `!`, `?`) and no line in it carries the punctuation code is made of.
 * "Here is the code:" and "This function reads the file and\nreturns its lines." are prose;
 * `Foo.bar(x)` and `class Foo:` are not.
 */
export const isProseParagraph = (lines: ReadonlyArray<string>): boolean => {
  const first = (lines[0] ?? "").trim()
  const last = (lines.at(-1) ?? "").trim()
  return /^[A-Z]/.test(first) && /[:.!?]$/.test(last) && lines.every((line) => !CODE_MARK.test(line))
}

/** Paragraphs as line ranges `[start, end)`: runs of non-blank lines. */
const paragraphRanges = (lines: ReadonlyArray<string>): Array<readonly [number, number]> => {
  const ranges: Array<readonly [number, number]> = []
  let start = -1
  lines.forEach((line, index) => {
    const blank = line.trim() === ""
    if (!blank && start === -1) start = index
    if (blank && start !== -1) {
      ranges.push([start, index])
      start = -1
    }
  })
  if (start !== -1) ranges.push([start, lines.length])
  return ranges
}

/**
 * Drops the prose paragraphs before the first and after the last paragraph of code,
 * keeping the code's own blank lines. An answer that is all prose comes back empty.
 */
export const stripSurroundingProse = (text: string): string => {
  const lines = linesOf(text)
  const isProse = ([start, end]: readonly [number, number]) => isProseParagraph(lines.slice(start, end))
  const ranges = paragraphRanges(lines)
  const first = ranges.findIndex((range) => !isProse(range))
  if (first === -1) return ""
  let last = ranges.length - 1
  while (last > first && isProse(ranges[last] ?? [0, 0])) last--
  return lines.slice(ranges[first]?.[0] ?? 0, ranges[last]?.[1] ?? lines.length).join("\n")
}

/** The block to keep when there are several: the longest (usage examples are short). */
const longestBlock = (blocks: ReadonlyArray<FencedBlock>): FencedBlock | undefined =>
  blocks.reduce<FencedBlock | undefined>(
    (best, block) => (best === undefined || block.body.length > best.body.length ? block : best),
    undefined
  )

/** Trims blank lines at both ends and ends with exactly one newline ("" stays ""). */
const asFileContent = (text: string): string => {
  const trimmed = text.replace(/^(\s*\n)+/, "").trimEnd()
  return trimmed === "" ? "" : `${trimmed}\n`
}

/**
 * The code in a model's answer: the longest fenced block if there is one (the prose around
 * it goes with the fences), otherwise the answer without the prose paragraphs before and
 * after the code. Ends with exactly one newline; empty when the answer holds no code.
 */
export const extractCode = (answer: string): string => {
  const text = stripThinking(answer)
  const block = longestBlock(fencedBlocks(text))
  return asFileContent(block !== undefined ? block.body : stripSurroundingProse(text))
}

/**
 * For prose files (Markdown, text), where stripping prose would strip everything: removes
 * only a fence that wraps the whole answer.
 */
export const unwrapFence = (text: string): string => {
  const trimmed = text.trim()
  const lines = linesOf(trimmed)
  const [block] = fencedBlocks(trimmed)
  const wrapsAll = block !== undefined && OPENING_FENCE.test(lines[0] ?? "") &&
    linesOf(block.body).length + (block.closed ? 2 : 1) === lines.length
  return asFileContent(wrapsAll ? block.body : trimmed)
}

// ---------------------------------------------------------------------------------------------
// JSON (plans)

/** Why no JSON value could be read from an answer: said so the model can fix it. */
export interface JsonExtractionError {
  readonly message: string
}

/**
 * The first balanced `{…}` in `text` — or `[{…}, …]` when a list of objects comes first —
 * found by scanning brackets outside strings; `undefined` when there is no opening brace, and
 * the rest of the text when it never closes (truncated).
 */
export const firstJsonObject = (text: string): { readonly body: string; readonly complete: boolean } | undefined => {
  const brace = text.indexOf("{")
  if (brace === -1) return undefined
  const list = /\[\s*\{/.exec(text)
  const start = list !== null && list.index < brace ? list.index : brace
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === "\\") i++
      else if (c === "\"") inString = false
    } else if (c === "\"") inString = true
    else if (c === "{" || c === "[") depth++
    else if (c === "}" || c === "]") {
      depth--
      if (depth === 0) return { body: text.slice(start, i + 1), complete: true }
    }
  }
  return { body: text.slice(start), complete: false }
}

/**
 * Removes what models add to JSON and JSON forbids: `//` and `/* *\/` comments and trailing
 * commas outside strings, raw line breaks and tabs inside them.
 */
export const relaxJson = (text: string): string => {
  let out = ""
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? ""
    const next = text[i + 1]
    if (inString) {
      // A raw line break or tab inside a string (code written into JSON by hand) is escaped.
      out += c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : c
      if (c === "\\") out += text[++i] ?? ""
      else if (c === "\"") inString = false
    } else if (c === "\"") {
      inString = true
      out += c
    } else if (c === "/" && next === "/") {
      while (i < text.length && text[i] !== "\n") i++
      out += "\n"
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2)
      i = end === -1 ? text.length : end + 1
    } else if (c === ",") {
      const rest = /^\s*([}\]])/.exec(text.slice(i + 1))
      if (rest === null) out += c
    } else {
      out += c
    }
  }
  return out
}

/**
 * The JSON object in a model's answer, leniently: the content of a ```json fence if there is
 * one, else the first balanced `{…}`; comments and trailing commas removed; then `JSON.parse`.
 * Fails with a message meant for the model (what was wrong, what to send instead).
 */
export const extractJson = (answer: string): Either.Either<unknown, JsonExtractionError> => {
  const text = stripThinking(answer)
  if (text.trim() === "") return Either.left({ message: "The answer was empty. Answer with one JSON object." })
  const fenced = fencedBlocks(text).find((block) => block.info === "json" || block.body.trim().startsWith("{"))
  const found = firstJsonObject(fenced !== undefined ? fenced.body : text)
  if (found === undefined) {
    return Either.left({ message: "The answer holds no JSON object (no `{`). Answer with one JSON object and nothing else." })
  }
  if (!found.complete) {
    return Either.left({
      message:
        "The JSON object is cut off before its closing `}` (the answer may have hit the token limit). Answer with a shorter, complete JSON object."
    })
  }
  return Either.mapLeft(parseJsonText(relaxJson(found.body)), (reason) => ({
    message: `The JSON object does not parse (${reason}). Answer with strictly valid JSON: double-quoted keys and strings, no comments.`
  }))
}

/**
 * Any JSON value in an answer (an `llm_call` node's declared output may be a list or a number):
 * the whole answer when it parses, else the object `extractJson` finds.
 */
export const extractJsonValue = (answer: string): Either.Either<unknown, JsonExtractionError> => {
  const text = stripThinking(answer).trim()
  const fenced = fencedBlocks(text).find((block) => block.info === "json")
  const candidate = fenced !== undefined ? fenced.body.trim() : text
  return Either.orElse(parseJsonText(relaxJson(candidate)), () => extractJson(answer))
}

// ---------------------------------------------------------------------------------------------
// Drafts (code and tests)

/** A skill draft as the model answered it: `{"code": …, "tests": …}`, or either part alone. */
export interface DraftParts {
  readonly code: string
  readonly tests: string
}

const stringField = (value: unknown, field: string): string | undefined => {
  const found = Predicate.hasProperty(value, field) ? value[field] : undefined
  return typeof found === "string" ? found : undefined
}

/** Test files call `test(`; the skill's own code does not. */
const looksLikeTests = (code: string): boolean => /(^|[^\w.])(test|describe)\s*\(/.test(code)

/**
 * The code and tests in a drafting answer. Asked for (and, on a server that enforces it,
 * constrained to) `{"code": "…", "tests": "…"}`; a model that answered with fenced blocks or
 * with the bare file instead is read leniently: a block that calls `test(` is the tests, the
 * longest other block is the code; a bare file is the part `asked` for (with `both`, tests when it
 * calls `test(` and has no skill header). A part the answer lacks is "" (each file ends with one newline).
 */
export const parseDraftAnswer = (answer: string, asked: "both" | "code" | "tests" = "both"): DraftParts => {
  const json = extractJson(answer)
  if (Either.isRight(json)) {
    const code = stringField(json.right, "code")
    const tests = stringField(json.right, "tests")
    if (code !== undefined || tests !== undefined) {
      return { code: code === undefined ? "" : extractCode(code), tests: tests === undefined ? "" : extractCode(tests) }
    }
  }
  const blocks = fencedBlocks(stripThinking(answer)).filter((block) => block.body.trim() !== "")
  if (blocks.length >= 2) {
    const testBlocks = blocks.filter((block) => looksLikeTests(block.body))
    const codeBlock = longestBlock(blocks.filter((block) => !looksLikeTests(block.body)))
    return {
      code: codeBlock === undefined ? "" : asFileContent(codeBlock.body),
      tests: testBlocks[0] === undefined ? "" : asFileContent(testBlocks[0].body)
    }
  }
  const code = extractCode(answer)
  const isTests = asked === "tests" || (asked === "both" && looksLikeTests(code) && !/@skill/.test(code))
  return isTests ? { code: "", tests: code } : { code, tests: "" }
}
