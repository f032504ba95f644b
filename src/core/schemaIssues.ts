/**
 * The one place a Schema `ParseError` becomes text. Every decode failure the project reports —
 * config, plans, skill headers, `--args`, approval and state files, cassettes, luallm's status,
 * a server's answers — is a list of issues, each addressed by its path:
 * `limits.max_task_steps: expected a positive integer, got "ten"`, `nodes[2].skill_name: is missing`.
 */
import { ParseResult } from "effect"

export interface ParseIssue {
  /** Where: `limits.max_task_steps`, `nodes[2].depends_on[0]`; "" for the value itself. */
  readonly path: string
  readonly message: string
  /** The Schema issue's kind (`Type`, `Missing`, `Unexpected`, `Refinement`, …). */
  readonly kind: string
}

/** A path as code reads it: keys joined by `.`, array indexes in brackets. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) => typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`,
    ""
  )

/** Every issue of `error`, with its path; a key the schema does not know is an "unknown key". */
export const parseIssues = (error: ParseResult.ParseError): ReadonlyArray<ParseIssue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
    path: formatPath(issue.path),
    message: issue._tag === "Unexpected" ? "unknown key" : issue.message,
    kind: issue._tag
  }))

/** One issue as text: `path: message`, or the message alone for the value itself. */
export const formatIssue = (issue: ParseIssue): string => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`)

/** The issues to show before "and N more", so a file that is wrong everywhere still makes a short message. */
const SHOWN_ISSUES = 8

/** `error` as one line: its issues joined by "; ", at most eight, then how many more there are. */
export const formatParseError = (error: ParseResult.ParseError): string => {
  const issues = parseIssues(error)
  const shown = issues.slice(0, SHOWN_ISSUES).map(formatIssue)
  const more = issues.length - shown.length
  return [...shown, ...(more > 0 ? [`and ${more} more`] : [])].join("; ")
}
