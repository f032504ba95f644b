/**
 * Keeps SECURITY.md true: each guarantee names the tests that prove it, and those tests must
 * exist. Every `test/….test.ts` file it names must be there, and every test title it quotes
 * (the part after the last `›` or `>`) must be written in one of the files its guarantee names.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const security = readFileSync(join(root, "SECURITY.md"), "utf8")

/** A guarantee: one bullet, its lines joined. */
const bullets = security
  .split(/\n(?=- |#)/)
  .filter((block) => block.startsWith("- "))
  .map((block) => block.replace(/\s*\n\s*/g, " "))

const filesIn = (bullet: string) => Array.from(bullet.matchAll(/`(test\/[\w/.-]+\.test\.ts)`/g), (m) => m[1] ?? "")

/** The quoted test titles of a bullet, each cut to its last segment (a test's own name). */
const titlesIn = (bullet: string) =>
  Array.from(bullet.matchAll(/"((?:[^"\\]|\\.)+)"/g), (m) => m[1] ?? "")
    .filter((quoted) => !quoted.includes("\\"))
    .map((quoted) => (quoted.split(/ › | > /).pop() ?? "").replace(/^… /, "").trim())
    .filter((title) => title.length > 12)

/**
 * Whether the source writes the title: as it stands (quotes escaped or not, lines as they were
 * wrapped), up to a closing `…`, or, for a case of a table (`refuses 'exec of a shell'`, from
 * `it.each(…)("refuses %j")`), the case's name.
 */
const written = (source: string, title: string) => {
  const text = source.replace(/\s+/g, " ").replace(/\\"/g, "\"")
  const wanted = title.replace(/…$/, "")
  const tableCase = /^\w+ '(.+)'$/.exec(wanted)?.[1]
  return tableCase === undefined ? text.includes(wanted) : text.includes(tableCase.replace(/…$/, ""))
}

describe("SECURITY.md", () => {
  const guarantees = bullets.filter((bullet) => filesIn(bullet).length > 0)

  it("names test files that exist", () => {
    const missing = guarantees.flatMap(filesIn).filter((file) => !existsSync(join(root, file)))
    expect(guarantees.length).toBeGreaterThan(30)
    expect(missing).toEqual([])
  })

  it("quotes test titles that are written in the files its guarantee names", () => {
    const checked: Array<string> = []
    const notFound = guarantees.flatMap((bullet) => {
      const sources = filesIn(bullet).filter((file) => existsSync(join(root, file))).map((file) => readFileSync(join(root, file), "utf8"))
      return titlesIn(bullet).filter((title) => {
        checked.push(title)
        return !sources.some((source) => written(source, title))
      })
    })
    expect(checked.length).toBeGreaterThan(50)
    expect(notFound).toEqual([])
  })
})
