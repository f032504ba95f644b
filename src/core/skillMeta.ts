/**
 * The skill file format (SPEC part 11), pure: a skill is `<name>.js` that begins with a
 * metadata block, JSON inside a block comment, read WITHOUT running the code:
 *
 *   /* @skill { "name": "read_csv", "version": "1.0.0", "paths": ["~/data/**\/*.csv"],
 *               "public_functions": ["run"] } *\/
 *
 * A glob that contains `*` followed by `/` would close the comment, so it is written with
 * JSON's `\/` escape. Also here: which module form the code uses, and whether a declared
 * glob lies inside an allowed one (for `Skills.validate`).
 */
import { Either, Schema } from "effect"
import { JsonValue, parseJsonText, previewValue } from "./jsonText.ts"
import { formatParseError } from "./schemaIssues.ts"


/** Skill names are identifiers, never paths (SPEC part 14). */
export const SkillName = Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/)).annotations({
  message: (issue) => `expected a skill name ([a-z][a-z0-9_]*, at most 64 characters), got ${previewValue(issue.actual)}`
})
export type SkillName = typeof SkillName.Type

export const isSkillName = Schema.is(SkillName)

const FunctionName = Schema.String.pipe(Schema.pattern(/^[A-Za-z_$][\w$]*$/)).annotations({
  message: (issue) => `expected a JavaScript function name, got ${previewValue(issue.actual)}`
})

const NonEmptyString = Schema.String.pipe(Schema.minLength(1)).annotations({
  message: (issue) => `expected a non-empty string, got ${previewValue(issue.actual)}`
})

/** Host capabilities a skill may ask for; the sandbox grants them only with the caller's consent. */
export const Capability = Schema.Literal("exec").annotations({
  message: (issue) => `expected a known capability ("exec"), got ${previewValue(issue.actual)}`
})
export type Capability = typeof Capability.Type

// `exact`: a key may be absent, but not `undefined`, so a bad value yields one issue, not two.
const list = <S extends Schema.Schema.Any>(item: S) =>
  Schema.optionalWith(Schema.Array(item), { default: () => [], exact: true })

export const SkillMetadata = Schema.Struct({
  name: SkillName,
  version: NonEmptyString,
  description: Schema.optionalWith(Schema.String, { default: () => "", exact: true }),
  /** Other skills this one `require`s, by name; each runs in its own sandbox. */
  dependencies: list(SkillName),
  /** Globs of the paths the skill may touch (also bounded by the config's `allowed_paths`). */
  paths: list(NonEmptyString),
  urls: list(Schema.String),
  public_functions: Schema.Array(FunctionName).pipe(Schema.minItems(1)).annotations({
    message: (issue) => `expected a non-empty list of function names, got ${previewValue(issue.actual)}`
  }),
  capabilities: list(Capability),
  /** What `run` expects, for the planner: argument name → description. */
  args: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { exact: true })
})
export type SkillMetadata = typeof SkillMetadata.Type

/** The kind of value an argument takes, as the first word of its description in `args` says. */
export type ArgKind = "string" | "number" | "boolean" | "array" | "object"

/**
 * What an `args` description says the argument takes: its leading word (`"string: the file"`,
 * `"boolean, default true: …"`, `"array of strings, …"`), or null when it starts otherwise.
 */
export const argKind = (description: string): ArgKind | null => {
  const word = /^\s*([a-z]+)/i.exec(description)?.[1]?.toLowerCase()
  switch (word) {
    case "string":
    case "text":
    case "path":
      return "string"
    case "number":
    case "integer":
      return "number"
    case "boolean":
      return "boolean"
    case "array":
    case "list":
      return "array"
    case "object":
      return "object"
    default:
      return null
  }
}

/** `run`'s arguments as given on a command line or in a plan: a JSON object. */
export const SkillArgs = Schema.Record({ key: Schema.String, value: JsonValue }).annotations({
  message: (issue) => `expected a JSON object, got ${previewValue(issue.actual)}`
})

/** Why a skill's header could not be read; `line` is 1-based in the skill file when known. */
export interface MetadataProblem {
  readonly file: string
  readonly reason: string
  readonly line: number | null
}

const HEADER_START = /\/\*\s*@skill\b/

const lineAt = (text: string, offset: number): number => text.slice(0, offset).split("\n").length

/** Where JSON.parse says it stopped: "… at position 42" (Node) → 42. */
const jsonErrorPosition = (message: string): number | undefined => {
  const match = /position (\d+)/.exec(message)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

const decodeMetadata = Schema.decodeUnknownEither(SkillMetadata, { errors: "all", onExcessProperty: "error" })

/**
 * Reads the first `/* @skill { … } *\/` block of `text`. The code is never evaluated.
 * Every problem comes back as data naming the file and what is wrong.
 */
export const parseMetadata = (text: string, file: string): Either.Either<SkillMetadata, MetadataProblem> => {
  const start = HEADER_START.exec(text)
  if (start === null) {
    return Either.left({ file, line: null, reason: "it has no /* @skill { … } */ header" })
  }
  const bodyStart = start.index + start[0].length
  const end = text.indexOf("*/", bodyStart)
  if (end === -1) {
    return Either.left({ file, line: lineAt(text, start.index), reason: "the /* @skill header is never closed with */" })
  }
  const body = text.slice(bodyStart, end)
  const parsed = parseJsonText(body)
  if (Either.isLeft(parsed)) {
    const message = parsed.left
    const position = jsonErrorPosition(message)
    const line = position === undefined ? lineAt(text, bodyStart) : lineAt(text, bodyStart + position)
    // A glob such as "**/*.csv" closes the comment early, leaving JSON cut off mid-string.
    const hint = body.trimEnd().endsWith("}")
      ? ""
      : " (the header ends early: a glob containing */ must be written with JSON's \\/ escape, e.g. \"**\\/*.csv\")"
    return Either.left({ file, line, reason: `the header is not JSON: ${message}${hint}` })
  }
  return decodeMetadata(parsed.right).pipe(
    Either.mapLeft((error): MetadataProblem => ({
      file,
      line: lineAt(text, start.index),
      reason: formatParseError(error)
    }))
  )
}

export type ModuleForm = "esm" | "commonjs"

/** After one of these (or at the start), a `/` begins a regular expression, not a division. */
const REGEX_CAN_FOLLOW = new Set(["", "(", ",", "=", ":", "[", "!", "&", "|", "?", "{", "}", ";", "+", "-", "*", "%", "<", ">", "~", "^"])
const REGEX_CAN_FOLLOW_WORD = new Set(["return", "typeof", "case", "in", "of", "void", "throw", "delete", "new", "yield", "await", "else", "do"])

/** The index just past the regular-expression literal that starts at `start`. */
const skipRegex = (code: string, start: number): number => {
  let inClass = false
  for (let i = start + 1; i < code.length; i++) {
    const c = code[i]
    if (c === "\\") i++
    else if (c === "[") inClass = true
    else if (c === "]") inClass = false
    else if (c === "\n") return i
    else if (c === "/" && !inClass) return i + 1
  }
  return code.length
}

/**
 * Blanks out comments, string, template and regular-expression literals so that keywords
 * inside them do not count. A `/` is read as a regular expression by the usual heuristic
 * (what comes before it); a misread only means a file is treated as CommonJS and then fails
 * to load with the engine's own syntax error.
 */
const codeOnly = (code: string): string => {
  let out = ""
  let previous = ""
  let word = ""
  let i = 0
  while (i < code.length) {
    const c = code[i] ?? ""
    const next = code[i + 1]
    if (c === "/" && next === "/") {
      const end = code.indexOf("\n", i)
      i = end === -1 ? code.length : end
    } else if (c === "/" && next === "*") {
      const end = code.indexOf("*/", i + 2)
      const stop = end === -1 ? code.length : end + 2
      out += code.slice(i, stop).replace(/[^\n]/g, " ")
      i = stop
    } else if (c === "/" && (REGEX_CAN_FOLLOW.has(previous) || (previous === "a" && REGEX_CAN_FOLLOW_WORD.has(word)))) {
      out += " "
      i = skipRegex(code, i)
      previous = "/"
    } else if (c === "\"" || c === "'" || c === "`") {
      let j = i + 1
      while (j < code.length && code[j] !== c) j += code[j] === "\\" ? 2 : 1
      out += " "
      i = j + 1
      previous = c
    } else {
      out += c
      if (/[\w$]/.test(c)) {
        word = /[\w$]/.test(code[i - 1] ?? "") ? word + c : c
        previous = "a"
      } else if (!/\s/.test(c)) previous = c
      i++
    }
  }
  return out
}

const MODULE_SYNTAX =
  /(?:^|[\n;{}])\s*(?:export\s*(?:default\b|function\b|async\b|const\b|let\b|var\b|class\b|\{|\*)|import\s*(?:[\w$]+\s*(?:,|from\b)|\{|\*|["']))/

/**
 * Which module form `code` is written in: ES module when a statement starts with
 * `export …` or a static `import …` (dynamic `import(…)` does not count), CommonJS otherwise.
 */
export const detectModuleForm = (code: string): ModuleForm => {
  // Literals are blanked to a single space, so `import "x"` must be checked before blanking.
  if (/(?:^|\n)\s*import\s*["']/.test(code)) return "esm"
  return MODULE_SYNTAX.test(codeOnly(code)) ? "esm" : "commonjs"
}

const segmentSubset = (inner: string, outer: string): boolean => {
  // Inner wildcards become marker characters that only an outer wildcard can match.
  const innerText = inner.replace(/\*/g, "\u0000").replace(/\?/g, "\u0001")
  const outerSource = outer
    .split("")
    .map((c) => (c === "*" ? "[^]*" : c === "?" ? "[^\\u0000]" : c.replace(/[.+^${}()|[\]\\/]/g, "\\$&")))
    .join("")
  return new RegExp(`^${outerSource}$`).test(innerText)
}

const segmentsWithin = (inner: ReadonlyArray<string>, outer: ReadonlyArray<string>, i: number, j: number): boolean => {
  if (j === outer.length) return i === inner.length
  if (outer[j] === "**") {
    // `**` swallows zero or more inner segments (including an inner `**`).
    if (j === outer.length - 1) return true
    for (let k = i; k <= inner.length; k++) if (segmentsWithin(inner, outer, k, j + 1)) return true
    return false
  }
  const innerSegment = inner[i]
  const outerSegment = outer[j]
  if (innerSegment === undefined || outerSegment === undefined || innerSegment === "**") return false
  return segmentSubset(innerSegment, outerSegment) && segmentsWithin(inner, outer, i + 1, j + 1)
}

/**
 * True when every path `inner` matches is also matched by `outer` (both absolute and
 * normalised, with the glob semantics of `pathGlob.ts`). Used to check that a skill's
 * declared paths lie inside `allowed_paths`.
 */
export const globWithin = (inner: string, outer: string): boolean => {
  const split = (glob: string) => glob.split("/").filter((s) => s !== "")
  return segmentsWithin(split(inner), split(outer), 0, 0)
}
