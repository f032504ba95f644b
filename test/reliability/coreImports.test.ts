/**
 * The import rule of the functional core (SPEC "Shape"): every file in src/core imports only
 * `effect` (or `effect/…`) and sibling `./*.ts` files, and uses no Node global, so it runs
 * unchanged on Deno or in a browser. The files are read by esbuild, so an import is an import
 * whatever its form (static, re-export, dynamic, require), and a global is a free identifier:
 * the word "process" in a string, a comment, a property name or a local binding is not one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { build, type Plugin } from "esbuild"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const coreDir = join(import.meta.dirname, "..", "..", "src", "core")

const allowedImport = /^(effect(\/[\w./-]+)?|\.\/[\w.-]+\.ts)$/

/** Globals that exist on Node and nowhere else. */
const nodeGlobals = ["process", "Buffer", "require", "__dirname", "__filename", "global", "module", "exports", "setImmediate"]
const marker = (name: string) => `__node_global_${name}__`

/**
 * Type-only imports count too (their module must exist where the core runs), so they are made
 * value imports first; `verbatimModuleSyntax` keeps imports whose bindings go unused.
 */
const withTypeImportsAsValues = (source: string): string =>
  source.replace(/\bimport\s+type\b/g, "import").replace(/\bexport\s+type\s*(\{[^}]*\}\s*from\b)/g, "export $1")

/** What `source` breaks of the rule, one line per problem. */
const coreViolations = (source: string, file: string) =>
  Effect.promise(async () => {
    const imports: Array<string> = []
    const recordImports: Plugin = {
      name: "record-imports",
      setup(context) {
        context.onResolve({ filter: /.*/ }, (args) => {
          if (args.kind === "entry-point") return undefined
          imports.push(args.path)
          return { path: args.path, external: true }
        })
      }
    }
    const output = await build({
      stdin: { contents: withTypeImportsAsValues(source), loader: "ts", sourcefile: file, resolveDir: coreDir },
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
      bundle: true,
      write: false,
      format: "esm",
      logLevel: "silent",
      plugins: [recordImports],
      define: Object.fromEntries(nodeGlobals.map((name) => [name, marker(name)]))
    })
    const code = output.outputFiles.map((out) => out.text).join("\n")
    return [
      ...imports.filter((specifier) => !allowedImport.test(specifier)).map((specifier) => `imports ${JSON.stringify(specifier)}`),
      ...nodeGlobals.filter((name) => code.includes(marker(name))).map((name) => `uses the Node global ${name}`)
    ]
  })

const coreFiles = readdirSync(coreDir).filter((name) => name.endsWith(".ts")).sort()

describe("the functional core's import rule", () => {
  it("finds the core's files", () => {
    expect(coreFiles).toEqual(expect.arrayContaining(["graph.ts", "taskMachine.ts", "plan.ts", "llmOutput.ts"]))
  })

  for (const name of coreFiles) {
    it.effect(`src/core/${name} imports only effect and ./*.ts, and uses no Node global`, () =>
      Effect.gen(function*() {
        const source = readFileSync(join(coreDir, name), "utf8")
        expect(yield* coreViolations(source, name)).toEqual([])
      }))
  }

  it.effect("catches every form of a forbidden import and every Node global, and nothing that only looks like one", () =>
    Effect.gen(function*() {
      const bad = `
        import { readFile } from "node:fs"
        import type { Stats } from "node:fs/promises"
        export type { Scope } from "effect/Scope"
        import { type PlatformError } from "@effect/platform/Error"
        import { FileSystem } from "@effect/platform"
        import path from "path"
        export { State } from "../layers/State.ts"
        import { graph } from "./graph"
        import { Schema } from "effect"
        import { pipe } from "effect/Function"
        import { ok } from "./ok.ts"
        const os = await import("node:os")
        const cp = require("child_process") // the global, reported below
        export const env = process.env["HOME"]
        export const bytes = Buffer.from("x")
        export const here = __dirname + __filename
      `
      expect(yield* coreViolations(bad, "bad.ts")).toEqual([
        `imports "node:fs"`,
        `imports "node:fs/promises"`,
        `imports "@effect/platform/Error"`,
        `imports "@effect/platform"`,
        `imports "path"`,
        `imports "../layers/State.ts"`,
        `imports "./graph"`,
        `imports "node:os"`,
        "uses the Node global process",
        "uses the Node global Buffer",
        "uses the Node global require",
        "uses the Node global __dirname",
        "uses the Node global __filename"
      ])
      const lookalikes = `
        // process and Buffer in a comment; require() too
        export const prompt = "There is no process, no Buffer and no require here."
        export const settings = { process: 1, global: true }
        export const step = (task: { readonly process: number }) => task.process
        export const local = (process: number) => process + 1
      `
      expect(yield* coreViolations(lookalikes, "lookalikes.ts")).toEqual([])
    }))
})
