/**
 * The command line as a user meets it: help without colour codes off a terminal, an unknown
 * option named with the closest real one, progress as plain lines on stderr that `--log-level`
 * filters, and one place that turns an error into a message and an exit code. (The confirmation of
 * a task's plan, with @effect/cli's prompt, is tested in questions.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, realpathSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import { hoistRootOptions } from "../../src/shell/argv.ts"
import { ExitCodes, ExitWith, renderError } from "../../src/shell/exit.ts"
import { root } from "../../src/shell/root.ts"
import { runCli, runCliAsync, runCliInTerminal } from "../support/cli.ts"
import { openAiServer } from "../support/openaiServer.ts"

const bin = join(import.meta.dirname, "..", "..", "bin", "luallm-agent.cjs")
const freshHome = () => realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-cli-")))
const ESC = "\u001b"

const inTerminal = (args: ReadonlyArray<string>, env: Record<string, string>) => runCliInTerminal(args, env)

describe("--help", () => {
  it("has no colour codes in a pipe, even without NO_COLOR", () => {
    const home = freshHome()
    for (const args of [["--help"], ["run", "--help"], ["approvals", "retest", "--help"]]) {
      const run = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "", HOME: home } })
      expect(run.status).toBe(0)
      expect(run.stdout).toContain("USAGE")
      expect(run.stdout).not.toContain(ESC)
    }
  })

  it("is coloured on a terminal, and not with NO_COLOR set", async () => {
    const home = freshHome()
    const coloured = await inTerminal(["--help"], { HOME: home })
    expect(coloured.output).toContain("USAGE")
    expect(coloured.output).toContain(`${ESC}[`)
    const plain = await inTerminal(["--help"], { HOME: home, NO_COLOR: "1" })
    expect(plain.output).toContain("USAGE")
    expect(plain.output).not.toContain(`${ESC}[`)
  })
})

describe("an option the command does not have", () => {
  it("run --yse x names the option and the command, suggests --yes, and exits with the usage code", () => {
    const home = freshHome()
    const run = runCli(["run", "--yse", "count the words"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(ExitCodes.usage)
    expect(run.stdout).toBe("")
    expect(run.stderr.trim()).toBe("error: luallm-agent run has no option --yse. Did you mean --yes? `luallm-agent run --help` lists its options.")
  })

  it("is found after the request, in nested commands and among global options, with or without a close match", () => {
    const home = freshHome()
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["run", "count the words", "--jsn"], "luallm-agent run has no option --jsn. Did you mean --json?"],
      [["skills", "test", "shell_safe", "--allow-exe"], "luallm-agent skills test has no option --allow-exe. Did you mean --allow-exec?"],
      [["--confg", "x.json", "doctor"], "luallm-agent has no option --confg. Did you mean --config?"],
      [["approvals", "list", "--reason=x"], "luallm-agent approvals list has no option --reason. `luallm-agent approvals list --help`"],
      [["status", "--frobnicate"], "luallm-agent status has no option --frobnicate. `luallm-agent status --help`"]
    ]
    for (const [args, message] of cases) {
      const run = runCli(args, { env: { HOME: home }, cwd: home })
      expect(run.code).toBe(ExitCodes.usage)
      expect(run.stderr).toContain(message)
    }
  })

  it("leaves option values, built-in options and options of the parent command alone", () => {
    const home = freshHome()
    for (const args of [["log", "--tail", "5", "--task", "--json"], ["--log-level", "warning", "config", "--json"], ["config", "--log-level=debug", "--json"]]) {
      const run = runCli(args, { env: { HOME: home }, cwd: home })
      expect(run.stderr).toBe("")
      expect(run.code).toBe(ExitCodes.ok)
    }
  })
})

describe("global options after the command", () => {
  it("--config, --store and --on apply wherever they stand, with their values, and are checked as before", () => {
    const home = freshHome()
    const file = join(home, "my.json")
    writeFileSync(file, JSON.stringify({ limits: { max_concurrent_tasks: 7 } }))
    for (const args of [["config", "--json", "--config", file], ["config", "--config", file, "--json"], ["config", `--config=${file}`, "--json"]]) {
      const run = runCli(args, { env: { HOME: home }, cwd: home })
      expect(run.stderr).toBe("")
      expect(JSON.parse(run.stdout)).toMatchObject({ values: { limits: { max_concurrent_tasks: 7 } } })
    }
    const tasks = runCli(["tasks", "--store", "file", "--on", "local"], { env: { HOME: home }, cwd: home })
    expect(tasks).toMatchObject({ code: ExitCodes.ok, stderr: "" })
    const bad = runCli(["status", "--json", "--store", "nope"], { env: { HOME: home }, cwd: home })
    expect(bad.stderr).toContain(`store: expected "file" or a postgres:// URL, got "nope" (from --store)`)
    expect(bad.code).not.toBe(ExitCodes.ok)
  })

  it("moves only the root's options, never a word after --, a command's own option or a request", () => {
    expect(hoistRootOptions(root.descriptor, ["run", "count words", "--store", "file", "--yes"])).toEqual(["--store", "file", "run", "count words", "--yes"])
    expect(hoistRootOptions(root.descriptor, ["log", "--task", "ab12", "--llm=live"])).toEqual(["--llm=live", "log", "--task", "ab12"])
    expect(hoistRootOptions(root.descriptor, ["run", "--", "--store", "x"])).toEqual(["run", "--", "--store", "x"])
    expect(hoistRootOptions(root.descriptor, ["run", "--store x as text"])).toEqual(["run", "--store x as text"])
  })
})

describe("progress", () => {
  /** A workspace whose config points at a loopback model server that plans one llm_call node. */
  const workspace = Effect.gen(function*() {
    const home = freshHome()
    const server = yield* openAiServer({
      kind: "llama-server",
      reply: (message) =>
        message.startsWith("Job: plan")
          ? JSON.stringify({ nodes: [{ id: "answer", depends_on: [], action: "llm_call", prompt_template: "Say hello." }] })
          : message === "print hello"
          ? "```python\nprint(\"hello\")\n```"
          : "Hello."
    })
    const base = configInside(home, { allowedPaths: [`${home}/**`] })
    const configFile = join(home, "config.json")
    writeFileSync(configFile, JSON.stringify({
      ...base,
      llm: { ...base.llm, base_url: server.url },
      approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }
    }))
    const cli = (args: ReadonlyArray<string>) =>
      Effect.promise(() => runCliAsync(["--config", configFile, ...args], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 }))
    return { home, cli }
  })

  it.scopedLive("goes to stderr as plain lines when stdout is not a terminal; stdout keeps the result alone", () =>
    Effect.gen(function*() {
      const { cli } = yield* workspace
      const run = yield* cli(["run", "greet me", "--json"])
      expect(run.code).toBe(ExitCodes.ok)
      expect(JSON.parse(run.stdout)).toMatchObject({ state: "complete", result: { answer: "Hello." } })
      const lines = run.stderr.trim().split("\n")
      expect(lines).toContain("graph_exec ← planning: plan accepted (1 nodes)")
      expect(lines).toContain("  node answer [llm_call] complete")
      expect(lines.some((line) => /^ {2}llm plan: test-model \d+\.\d+s, \d+ tokens$/.test(line))).toBe(true)
      expect(lines.at(-1)).toMatch(/^complete ← graph_exec/)
      // Plain: no colour, no carriage return or cursor movement, no logger decoration.
      expect(run.stderr).not.toMatch(/[\u001b\r]|INFO|level=|fiber=/)
    }))

  it.scopedLive("--log-level warning silences it wherever it stands, debug keeps it, an unknown level is a usage error", () =>
    Effect.gen(function*() {
      const { cli } = yield* workspace
      for (const args of [["run", "greet me", "--json", "--log-level", "warning"], ["--log-level", "warning", "run", "greet me", "--json"], ["run", "--log-level=error", "greet me", "--json"]]) {
        const quiet = yield* cli(args)
        expect(quiet.code).toBe(ExitCodes.ok)
        expect(quiet.stderr).toBe("")
        expect(JSON.parse(quiet.stdout)).toMatchObject({ state: "complete" })
      }
      const debug = yield* cli(["--log-level", "debug", "run", "greet me"])
      expect(debug.code).toBe(ExitCodes.ok)
      expect(debug.stderr).toContain("complete ← graph_exec")
      expect(debug.stdout).toContain("answer: Hello.")
      const bad = yield* cli(["run", "greet me", "--log-level", "quiet"])
      expect(bad.code).toBe(ExitCodes.usage)
      expect(bad.stderr.trim()).toBe(
        `error: --log-level "quiet" is not a level. Give one of all, trace, debug, info, warning, error, fatal, none (warning hides the progress lines, debug shows everything).`
      )
    }))

  it.scopedLive("generate says what it asks in one plain line when not on a terminal", () =>
    Effect.gen(function*() {
      const { cli, home } = yield* workspace
      const run = yield* cli(["generate", join(home, "hello.py"), "print hello"])
      expect(run.code).toBe(ExitCodes.ok)
      expect(run.stderr).toBe("asking test-model…\n")
    }))
})

describe("one place for messages and exit codes", () => {
  it("an ExitWith that carries an error prints that error's message with its own code", () => {
    const error = { message: "--args is not a JSON object: expected a JSON object, got [1]." }
    expect(renderError(new ExitWith({ code: ExitCodes.usage, error }))).toEqual({ message: `error: ${error.message}`, code: ExitCodes.usage })
  })

  it("doctor's failed checks exit with the table's failure code", () => {
    const home = freshHome()
    const run = runCli(["doctor"], { env: { HOME: home, LUALLM_AGENT_LUALLM_BINARY: join(home, "no-luallm") }, cwd: home })
    expect(run.code).toBe(ExitCodes.failure)
    expect(run.stdout).toContain("✗ luallm binary")
  })
})
