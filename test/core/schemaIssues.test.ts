import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { formatIssue, formatParseError, formatPath, parseIssues } from "../../src/core/schemaIssues.ts"

const Limits = Schema.Struct({
  max_task_steps: Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({
    message: (issue) => ({ message: `expected a positive integer, got ${JSON.stringify(issue.actual)}`, override: true })
  }),
  paths: Schema.Array(Schema.String)
})
const Config = Schema.Struct({ limits: Limits, name: Schema.String })

const errorOf = (value: unknown) => {
  const decoded = Schema.decodeUnknownEither(Config, { errors: "all", onExcessProperty: "error" })(value)
  if (Either.isRight(decoded)) throw new Error("expected a decode error")
  return decoded.left
}

describe("parseIssues", () => {
  it("addresses each issue by its path, keys joined by dots and indexes in brackets", () => {
    const issues = parseIssues(errorOf({ limits: { max_task_steps: "ten", paths: ["/a", 3] }, extra: 1 }))
    expect(issues).toEqual([
      { path: "extra", message: "unknown key", kind: "Unexpected" },
      { path: "limits.max_task_steps", message: `expected a positive integer, got "ten"`, kind: "Refinement" },
      { path: "limits.paths[1]", message: "Expected string, actual 3", kind: "Type" },
      { path: "name", message: "is missing", kind: "Missing" }
    ])
  })

  it("formats the value itself without a path", () => {
    const [issue] = parseIssues(errorOf(5))
    expect(issue === undefined ? "" : formatIssue(issue)).toMatch(/^Expected \{/)
    expect(formatPath([])).toBe("")
    expect(formatPath(["nodes", 2, "depends_on", 0])).toBe("nodes[2].depends_on[0]")
  })
})

describe("formatParseError", () => {
  it("joins the issues into one line", () => {
    expect(formatParseError(errorOf({ limits: { max_task_steps: 0, paths: [] } }))).toBe(
      "limits.max_task_steps: expected a positive integer, got 0; name: is missing"
    )
  })

  it("shows at most eight issues, then how many more", () => {
    const Many = Schema.Array(Schema.Number)
    const decoded = Schema.decodeUnknownEither(Many, { errors: "all" })(Array.from({ length: 20 }, (_, i) => `${i}`))
    if (Either.isRight(decoded)) throw new Error("expected a decode error")
    const text = formatParseError(decoded.left)
    expect(text.split("; ")).toHaveLength(9)
    expect(text).toMatch(/^\[0\]: Expected number, actual "0"; /)
    expect(text.endsWith("; and 12 more")).toBe(true)
  })
})

describe("one formatter", () => {
  it("is the only module in src that turns a ParseError into text", () => {
    const src = join(import.meta.dirname, "..", "..", "src")
    const files = (dir: string): Array<string> =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
      )
    const formatting = files(src)
      .filter((file) => /ArrayFormatter|TreeFormatter|formatErrorSync|formatIssueSync/.test(readFileSync(file, "utf8")))
      .map((file) => relative(src, file))
    expect(formatting).toEqual(["core/schemaIssues.ts"])
  })
})
