/**
 * The help a user reads: every command and subcommand has a one-line description, each of its
 * arguments and options a description of its own, and examples that parse as printed; none of
 * @effect/cli's boilerplate (type lines, "This setting is optional.", `--wizard`, `--completions`).
 */
import { CommandDescriptor, HelpDoc, Usage } from "@effect/cli"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { CommandNode } from "../../src/shell/argv.ts"
import { programName, readCommandLine, tree, version } from "../../src/shell/cli.ts"
import { descriptionOf, helpFor } from "../../src/shell/help.ts"
import { withoutColour } from "../../src/shell/ui.ts"
import { runCli } from "../support/cli.ts"
import { shellWords, whyNotParsed } from "../support/commandLine.ts"

/** Every command of the tree with the path to it (the root first). */
const pathsBelow = (path: ReadonlyArray<CommandNode>): ReadonlyArray<ReadonlyArray<CommandNode>> => {
  const node = path.at(-1)
  return node === undefined ? [] : [path, ...node.children.flatMap((child) => pathsBelow([...path, child]))]
}
const everyPath = pathsBelow([tree])
const wordsOf = (path: ReadonlyArray<CommandNode>): string => path.slice(1).map((node) => node.name).join(" ")
const helpText = (path: ReadonlyArray<CommandNode>): string => withoutColour(HelpDoc.toAnsiText(helpFor(programName, version, path)))

/** A section of rendered help: the lines under `title` up to the next heading. */
const sectionOf = (text: string, title: string): ReadonlyArray<string> => {
  const lines = text.split("\n")
  const start = lines.indexOf(title)
  if (start === -1) return []
  const end = lines.findIndex((line, i) => i > start && /^[A-Z][A-Z ]+$/.test(line))
  return lines.slice(start + 1, end === -1 ? undefined : end)
}

/** The terms of a description list (ARGUMENTS, OPTIONS) with the text under each. */
const definitions = (lines: ReadonlyArray<string>): ReadonlyArray<{ readonly term: string; readonly text: string }> => {
  const found: Array<{ term: string; text: string }> = []
  for (const line of lines) {
    if (line.trim() === "") continue
    const last = found.at(-1)
    if (line.startsWith("  ") && last !== undefined) last.text = `${last.text} ${line.trim()}`.trim()
    else found.push({ term: line, text: "" })
  }
  return found
}

/** The option names a command takes (its own, and for the root the global ones), from its usage. */
const optionNames = (usage: Usage.Usage): ReadonlyArray<string> => {
  switch (usage._tag) {
    case "Named":
      return usage.names.filter((name) => name.startsWith("--"))
    case "Optional":
    case "Repeated":
      return optionNames(usage.usage)
    case "Concat":
    case "Alternation":
      return [...optionNames(usage.left), ...optionNames(usage.right)]
    case "Empty":
    case "Mixed":
      return []
  }
}

/** What @effect/cli writes by itself: type lines, optional-setting notes and built-ins we do not offer. */
const boilerplate = [
  "A user-defined piece of text",
  "A true or false value",
  "An integer",
  "A file.",
  "A directory",
  "One of the following",
  "This setting is optional",
  "Defaults to:",
  "must be repeated",
  "may be repeated",
  "environment variables",
  "--wizard",
  "--completions",
  "wizard mode",
  "completion script",
  "Sets the minimum log level",
  "Show the help documentation"
]

describe("every command's help", () => {
  it("covers the whole tree, subcommands included", () => {
    const words = everyPath.map(wordsOf)
    for (const command of ["", "run", "resume", "status", "tasks", "reset", "approvals list", "approvals show", "approvals retest", "approvals approve", "approvals reject", "skills list", "skills show", "skills run", "skills test", "demo", "doctor", "config", "log", "stats", "quick-prompt", "generate", "generate-with-context"]) {
      expect(words).toContain(command)
    }
  })

  it.each(everyPath.map((path) => [wordsOf(path) || "(root)", path] as const))("%s: a one-line description first, then the usage with the program's name", (_, path) => {
    const node = path[path.length - 1]
    if (node === undefined) throw new Error("empty path")
    const description = descriptionOf(node)
    expect(description.length).toBeGreaterThan(15)
    expect(description.length).toBeLessThanOrEqual(100)
    const text = helpText(path)
    expect(text).toContain(description)
    const [usage] = sectionOf(text, "USAGE").filter((line) => line.trim() !== "")
    expect(usage).toMatch(new RegExp(`^\\$ ${[programName, wordsOf(path)].join(" ").trim()}( |$)`))
  })

  it.each(everyPath.map((path) => [wordsOf(path) || "(root)", path] as const))("%s: every argument and option described in words, no boilerplate", (_, path) => {
    const node = path[path.length - 1]
    if (node === undefined) throw new Error("empty path")
    const text = helpText(path)
    for (const phrase of boilerplate) expect(text).not.toContain(phrase)
    const described = [...definitions(sectionOf(text, "ARGUMENTS")), ...definitions(sectionOf(text, path.length === 1 ? "GLOBAL OPTIONS" : "OPTIONS"))]
    for (const { term, text: description } of described) {
      expect(description, term).toMatch(/[a-z]{3,}.*[a-z]{3,}/)
    }
    const terms = described.map(({ term }) => term).join("\n")
    for (const option of optionNames(CommandDescriptor.getUsage(node.descriptor))) expect(terms).toContain(option)
    if (path.length === 1) for (const global of ["--config", "--llm", "--store", "--log-level", "--help", "--version"]) expect(terms).toContain(global)
  })

  it.each(everyPath.map((path) => [wordsOf(path) || "(root)", path] as const))("%s: examples that parse as printed, and use the command", (_, path) => {
    const examples = sectionOf(helpText(path), "EXAMPLES").filter((line) => line.startsWith("$ "))
    expect(examples.length).toBeGreaterThan(0)
    return Effect.runPromise(
      Effect.forEach(examples, (example) =>
        Effect.gen(function*() {
          const [words = []] = shellWords(example.slice(2))
          expect(words[0]).toBe(programName)
          expect(yield* whyNotParsed(words.slice(1)), example).toBeUndefined()
          // The example is about this command: the commands it names start with this one's.
          const line = readCommandLine(words.slice(1))
          const named = Either.isRight(line) && line.right._tag === "Help" ? "help" : words.slice(1).filter((word) => !word.startsWith("-")).join(" ")
          if (path.length > 1) expect(` ${named} `, example).toContain(` ${wordsOf(path)} `)
        }), { discard: true }))
  })

  it("a wrong example is caught: an unknown option, a missing argument, a command that is not there", () =>
    Effect.gen(function*() {
      expect(yield* whyNotParsed(shellWords("run --yse x")[0] ?? [])).toContain("has no option --yse")
      expect(yield* whyNotParsed(shellWords("approvals show")[0] ?? [])).toBeDefined()
      expect(yield* whyNotParsed(shellWords("help aprovals")[0] ?? [])).toContain("Did you mean approvals?")
      expect(yield* whyNotParsed(shellWords("run --wizard")[0] ?? [])).toContain("has no option --wizard")
    }).pipe(Effect.runPromise))
})

describe("the examples", () => {
  const bin = join(import.meta.dirname, "..", "..", "bin", "luallm-agent.cjs")
  /** The commands whose examples need no model, no server and nothing saved before (an id, a draft). */
  const standalone = /^luallm-agent (help|config|tasks|status|log|stats|approvals list|skills (list|show|run|test))\b/
  const needsSomethingSaved = /--task|--draft|\b5f0c\b|\b3f2a9c1e\b/

  it("that need nothing but a home with the data they name run as printed, through a shell, with exit 0", () => {
    const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-help-")))
    mkdirSync(join(home, "data"))
    writeFileSync(join(home, "data", "q1.csv"), "region,amount\nnorth,3\nsouth,4\n")
    writeFileSync(join(home, "luallm-agent.json"), JSON.stringify({ allowed_paths: ["~/data/**"] }))
    const printed = [...new Set(everyPath.flatMap((path) => sectionOf(helpText(path), "EXAMPLES")).filter((line) => line.startsWith("$ ")).map((line) => line.slice(2)))]
    const runnable = printed.filter((example) => standalone.test(example) && !needsSomethingSaved.test(example))
    expect(runnable.length).toBeGreaterThanOrEqual(10)
    for (const example of runnable) {
      const command = example.replace(/^luallm-agent/, `"${process.execPath}" "${bin}"`)
      const run = spawnSync("sh", ["-c", command], {
        cwd: home,
        encoding: "utf8",
        timeout: 30_000,
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, NO_COLOR: "1" }
      })
      expect({ example, code: run.status, stderr: run.stderr }).toMatchObject({ example, code: 0 })
    }
  })
})

describe("asking for help through the CLI", () => {
  it("`run --help`, `help run` and `run -h` print the same help, on stdout, with exit 0", () => {
    const runs = [["run", "--help"], ["help", "run"], ["run", "-h"], ["--config", "x.json", "run", "--help"]].map((args) => runCli(args))
    for (const run of runs) {
      expect(run.code).toBe(0)
      expect(run.stderr).toBe("")
      expect(run.stdout).toBe(runs[0]?.stdout)
    }
    expect(runs[0]?.stdout).toContain("luallm-agent run")
    expect(runs[0]?.stdout).toContain("<request>")
    expect(runs[0]?.stdout).toContain("EXAMPLES")
  })

  it("the root help lists each command with its one-liner and the global options", () => {
    const run = runCli(["--help"])
    expect(run.code).toBe(0)
    const commands = sectionOf(run.stdout, "COMMANDS")
    for (const path of everyPath.slice(1)) {
      const node = path[path.length - 1]
      if (node === undefined) continue
      expect(commands.some((line) => line.trim().startsWith(`${wordsOf(path)} `) && line.endsWith(descriptionOf(node)))).toBe(true)
    }
    for (const global of ["--config FILE", "--llm live|replay:FILE|record:FILE", "--store file|postgres://…", "--log-level LEVEL", "-h, --help", "--version"]) {
      expect(sectionOf(run.stdout, "GLOBAL OPTIONS")).toContain(global)
    }
    for (const phrase of boilerplate) expect(run.stdout).not.toContain(phrase)
  })

  it("a command that needs a subcommand, given none, shows its help; `help` of a command that is not there says which are", () => {
    for (const args of [[], ["approvals"], ["skills"]]) {
      const run = runCli(args)
      expect(run.code).toBe(0)
      expect(run.stdout).toContain("COMMANDS")
      expect(run.stdout).not.toContain("--wizard")
    }
    const wrong = runCli(["help", "approvals", "aprove"])
    expect(wrong.code).toBe(2)
    expect(wrong.stdout).toBe("")
    expect(wrong.stderr.trim()).toBe(
      `error: luallm-agent approvals has no command "aprove". Did you mean approve? Its commands: approve, list, reject, retest, show; \`luallm-agent approvals --help\` describes them.`
    )
  })

  it("a usage problem @effect/cli reports is followed by the help to read", () => {
    for (const [args, problem, help] of [
      [["run"], "Missing argument <request>", "`luallm-agent run --help` shows how to use it."],
      [["approvals", "show"], "Missing argument <id>", "`luallm-agent approvals show --help` shows how to use it."],
      [["log", "--tail", "x"], "'x' is not a integer", "`luallm-agent log --help` shows how to use it."]
    ] as const) {
      const run = runCli(args)
      expect(run.code).toBe(2)
      expect(run.stderr.trim().split("\n").filter((line) => line.trim() !== "")).toEqual([problem, help])
    }
  })

  it("the built-ins it does not describe are refused by name; --version still answers", () => {
    const wizard = runCli(["run", "--wizard"])
    expect(wizard.code).toBe(2)
    expect(wizard.stderr).toContain("luallm-agent run has no option --wizard.")
    const completions = runCli(["--completions", "bash"])
    expect(completions.code).toBe(2)
    expect(completions.stderr).toContain("luallm-agent has no option --completions.")
    const versionRun = runCli(["--version"])
    expect(versionRun.code).toBe(0)
    expect(versionRun.stdout.trim()).toBe(version)
  })

  it("a request that reads like help is a request: `run help` and words after `--`", () => {
    const asRequest = [["run", "help"], ["run", "--", "--help"]]
    for (const args of asRequest) {
      const line = readCommandLine(args)
      expect(Either.isRight(line) && line.right._tag).toBe("Parse")
    }
  })
})
