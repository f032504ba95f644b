import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { detectModuleForm, globWithin, parseMetadata } from "../../src/core/skillMeta.ts"

const header = (json: string) => `/* @skill ${json} */\nexport function run() {}\n`

const problem = (text: string) => Either.getOrThrowWith(Either.flip(parseMetadata(text, "/skills/x.js")), () => new Error("expected a problem"))

describe("parseMetadata", () => {
  it("reads the header and fills in the optional fields", () => {
    const meta = Either.getOrThrow(parseMetadata(header(`{"name": "read_csv", "version": "1.0.0", "public_functions": ["run"]}`), "x.js"))
    expect(meta).toEqual({
      name: "read_csv",
      version: "1.0.0",
      description: "",
      dependencies: [],
      paths: [],
      urls: [],
      public_functions: ["run"],
      capabilities: []
    })
  })

  it("reads a glob written with JSON's \\/ escape", () => {
    const meta = Either.getOrThrow(parseMetadata(header(`{"name": "a", "version": "1", "paths": ["~/data/**\\/*.csv"], "public_functions": ["run"]}`), "x.js"))
    expect(meta.paths).toEqual(["~/data/**/*.csv"])
  })

  it("keeps capabilities and the description of run's arguments", () => {
    const meta = Either.getOrThrow(parseMetadata(
      header(`{"name": "shell_safe", "version": "1", "capabilities": ["exec"], "args": {"command": "string"}, "public_functions": ["run"]}`),
      "x.js"
    ))
    expect(meta.capabilities).toEqual(["exec"])
    expect(meta.args).toEqual({ command: "string" })
  })

  it("never runs the code: a header after code that would throw is still read", () => {
    const text = `throw new Error("not run")\n/* @skill {"name": "a", "version": "1", "public_functions": ["run"]} */`
    expect(Either.isRight(parseMetadata(text, "x.js"))).toBe(true)
  })

  it("names a file without a header", () => {
    expect(problem("export function run() {}")).toEqual({ file: "/skills/x.js", line: null, reason: "it has no /* @skill { … } */ header" })
  })

  it("names an unclosed header", () => {
    expect(problem("\n/* @skill {\"name\": \"a\"").reason).toBe("the /* @skill header is never closed with */")
  })

  it("reports a header that is not JSON with the JSON error and its line", () => {
    const found = problem(`/* @skill {\n  "name": "a",\n  "version": 1,,\n} */`)
    expect(found.reason).toMatch(/^the header is not JSON: .*position \d+/)
    expect(found.line).toBe(3)
  })

  it("explains a glob that closed the comment early", () => {
    const found = problem(`/* @skill {"name": "a", "version": "1", "paths": ["~/data/**/*.csv"], "public_functions": ["run"]} */`)
    expect(found.reason).toContain("a glob containing */ must be written with JSON's \\/ escape")
  })

  it("names every missing required field", () => {
    expect(problem(header(`{"description": "x"}`)).reason).toBe("name: is missing; version: is missing; public_functions: is missing")
  })

  it("refuses an empty public_functions, a path-like name and an unknown key", () => {
    const found = problem(header(`{"name": "../etc", "version": "1", "public_functions": [], "path": ["/x"]}`))
    expect(found.reason).toContain("name: expected a skill name ([a-z][a-z0-9_]*, at most 64 characters), got \"../etc\"")
    expect(found.reason).toContain("public_functions: expected a non-empty list of function names, got []")
    expect(found.reason).toContain("path: unknown key")
  })

  it("refuses an unknown capability", () => {
    expect(problem(header(`{"name": "a", "version": "1", "capabilities": ["network"], "public_functions": ["run"]}`)).reason)
      .toBe("capabilities[0]: expected a known capability (\"exec\"), got \"network\"")
  })
})

describe("detectModuleForm", () => {
  it.each([
    ["export function run(args) {}", "esm"],
    ["export async function run(args) {}", "esm"],
    ["export const run = () => 1", "esm"],
    ["export default { run }", "esm"],
    ["const x = 1\nexport { x as run }", "esm"],
    ["import { a } from \"dep\"\nexports.run = a", "esm"],
    ["import \"dep\"", "esm"],
    ["function run(args) {}\nmodule.exports = { run }", "commonjs"],
    ["exports.run = (args) => import(\"x\")", "commonjs"],
    ["// export function run() {}\nmodule.exports = { run: () => 1 }", "commonjs"],
    ["const text = \"export const run = 1\"\nmodule.exports = { run: () => text }", "commonjs"],
    ["/* export function run() {} */\nexports.run = () => 1", "commonjs"],
    ["const unquote = (s) => s.replace(/'/g, \"\")\nexport function run(a) { return unquote(a) }", "esm"],
    ["function f(s) { return /\"/.test(s) }\nexport const run = f", "esm"],
    ["const half = total / 2, third = total / 3\nexport const run = () => half", "esm"],
    ["const re = /[/\"]/\nmodule.exports = { run: (s) => re.test(s) }", "commonjs"],
    ["function q(s) {\n  const n = s.length\n  return /'/.test(s) ? n : 0\n}\nexport const run = q", "esm"]
  ] as const)("%j is %s", (code, form) => {
    expect(detectModuleForm(code)).toBe(form)
  })
})

describe("globWithin", () => {
  it.each([
    ["/data/**", "/data/**", true],
    ["/data/*.csv", "/data/**", true],
    ["/data/x/*.csv", "/data/**", true],
    ["/data", "/data/**", true],
    ["/data/a*", "/data/*", true],
    ["/data/report.csv", "/data/*.csv", true],
    ["/**", "/data/**", false],
    ["/data/**", "/data/*", false],
    ["/data/*", "/data/a*", false],
    ["/d*/x", "/data/x", false],
    ["/other/file", "/data/**", false],
    ["/data/**/*.csv", "/data/**/*.csv", true],
    ["/data/x/**", "/data/**/x", false]
  ] as const)("%s within %s: %s", (inner, outer, within) => {
    expect(globWithin(inner, outer)).toBe(within)
  })
})
