/**
 * The task flow without dead ends, through the CLI against a real loopback model server: a model
 * that is down (connection refused), silent (timeout) or failing (503) mid-task pauses the task
 * (exit 3) with the reason and the command that continues it; `resume` continues from where it
 * stopped once the model answers; `run --json` and `resume --json` print one JSON outcome on
 * stdout whatever happens; `resume --retry-failed` runs a failed task's failed nodes again without
 * re-running what completed (the `mark` skill's side effects count the runs).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCliAsync } from "../support/cli.ts"
import { openAiServer, type OpenAiServer } from "../support/openaiServer.ts"

/** Appends its tag to marks.txt: each line is one run of the skill. */
const markSkill = (dataDir: string) => `/* @skill {"name": "mark", "version": "1.0.0", "description": "Appends a tag to the marks file and returns it", "paths": ["${dataDir}/**"], "public_functions": ["run"], "args": {"tag": "string"}} */
export function run({ tag }) {
  fs.appendFile("${dataDir}/marks.txt", tag + "\\n")
  return tag
}
`

/** Reads a text file (fails while it does not exist). */
const readSkill = (dataDir: string) => `/* @skill {"name": "read_text", "version": "1.0.0", "description": "Returns the text of a file", "paths": ["${dataDir}/**"], "public_functions": ["run"], "args": {"path": "string"}} */
export function run({ path }) {
  return fs.readFile(path)
}
`

const shoutCode = `/* @skill {"name": "shout", "version": "1.0.0", "description": "Upper-cases a text", "public_functions": ["run"], "args": {"text": "string"}} */
export function run({ text }) { return String(text).toUpperCase() }
`
const shoutTests = `const { run } = require("shout")
test("upper-cases", () => { assert.equal(run({ text: "hi" }), "HI") })
`

const node = (id: string, fields: Record<string, unknown>, dependsOn: ReadonlyArray<string> = []) => ({ id, depends_on: dependsOn, ...fields })

/** The plans the scripted model writes, by the request they answer. */
const plans = (dataDir: string): Record<string, unknown> => ({
  // A skill with a side effect, then a model's answer.
  greet: [node("first", { action: "skill", skill_name: "mark", skill_args: { tag: "a" } }), node("answer", { action: "llm_call", prompt_template: "Say hello." }, ["first"])],
  // A skill with a side effect, a skill that fails while data/input.txt is missing, a model's answer after it.
  read: [
    node("first", { action: "skill", skill_name: "mark", skill_args: { tag: "a" } }),
    node("input", { action: "skill", skill_name: "read_text", skill_args: { path: `${dataDir}/input.txt` }, max_retries: 0 }, ["first"]),
    node("answer", { action: "llm_call", prompt_template: "Summarise: {input}" }, ["input"])
  ],
  // A skill the library lacks.
  shout: [node("loud", { action: "skill", skill_name: "shout", skill_args: { text: "hi" }, description: "Upper-case the text." })]
})

const reply = (dataDir: string) => (message: string): string => {
  if (message.startsWith("Job: plan")) {
    const request = /Request: (\w+)/.exec(message)?.[1] ?? ""
    return JSON.stringify({ nodes: plans(dataDir)[request] ?? [] })
  }
  if (message.startsWith("Job: write a missing skill")) return JSON.stringify({ code: shoutCode, tests: shoutTests })
  return message.includes("Summarise") ? "A summary." : "Hello."
}

interface Workspace {
  readonly home: string
  readonly dataDir: string
  readonly server: OpenAiServer
  readonly cli: (args: ReadonlyArray<string>) => Effect.Effect<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>
  readonly marks: () => ReadonlyArray<string>
}

/** A workspace whose config points at a loopback server; retries and timeouts kept short. */
const workspace = Effect.gen(function*() {
  const home = mkdtempSync(join(tmpdir(), "luallm-agent-flow-"))
  const dataDir = join(home, "data")
  mkdirSync(dataDir, { recursive: true })
  const server = yield* openAiServer({ reply: reply(dataDir) })
  const base = configInside(home, { allowedPaths: [`${dataDir}/**`] })
  mkdirSync(base.skills.allowed_dir, { recursive: true })
  writeFileSync(join(base.skills.allowed_dir, "mark.js"), markSkill(dataDir))
  writeFileSync(join(base.skills.allowed_dir, "read_text.js"), readSkill(dataDir))
  const configFile = join(home, "config.json")
  writeFileSync(configFile, JSON.stringify({
    ...base,
    llm: { ...base.llm, base_url: server.url, max_retries: 1, retry_max_seconds: 1 },
    limits: { ...base.limits, llm_timeout_seconds: 1 },
    approval_tiers: { ...base.approval_tiers, task_confirmation: "auto" }
  }))
  const cli = (args: ReadonlyArray<string>) =>
    Effect.promise(() => runCliAsync(["--config", configFile, "--log-level", "warning", ...args], { env: { HOME: home }, cwd: home, timeoutMs: 60_000 }))
  const marks = () => {
    const file = join(dataDir, "marks.txt")
    return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((line) => line !== "") : []
  }
  return { home, dataDir, server, cli, marks } satisfies Workspace
})

/** stdout holds exactly one JSON document. */
const outcomeOf = (stdout: string) => JSON.parse(stdout)

const short = (id: string) => id.slice(0, 8)

describe("a model that is down mid-task pauses the task", () => {
  it.scopedLive("while planning (connection refused): exit 3 with the reason and the command; a new run is not blocked; resume completes it", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      yield* ws.server.setOutage("refused")
      const down = yield* ws.cli(["run", "greet me", "--json"])
      expect(down.code).toBe(ExitCodes.paused)
      const paused = outcomeOf(down.stdout)
      const id: string = paused.task_id
      expect(paused).toMatchObject({ state: "model_wait", error: null, next_command: `luallm-agent resume --task ${short(id)}` })
      expect(paused.paused.reason).toBe("model")
      expect(paused.paused.message).toContain(`Could not reach the LLM at ${ws.server.url}`)
      expect(paused.paused.message).toContain("ECONNREFUSED")
      expect(paused.paused.message).toMatch(new RegExp(`continue it with \`luallm-agent resume --task ${short(id)}\`\\.$`))
      expect(ws.marks()).toEqual([])

      // The model is back: another task runs at once, and the paused one continues.
      yield* ws.server.setOutage(null)
      const other = yield* ws.cli(["run", "greet them", "--json"])
      expect(other.code).toBe(ExitCodes.ok)
      expect(outcomeOf(other.stdout)).toMatchObject({ state: "complete", result: { answer: "Hello." } })
      const resumed = yield* ws.cli(["resume", "--task", short(id), "--json"])
      expect(resumed.code).toBe(ExitCodes.ok)
      expect(outcomeOf(resumed.stdout)).toMatchObject({ task_id: id, state: "complete", result: { answer: "Hello." }, next_command: null })
      expect(ws.marks()).toEqual(["a", "a"])
    }))

  it.scopedLive("in an llm_call node (503 after the retries): the completed skill node is kept, resume runs only what is left", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      yield* ws.server.setOutage("unavailable", (message) => message.startsWith("Job: answer step"))
      const down = yield* ws.cli(["run", "greet me"])
      expect(down.code).toBe(ExitCodes.paused)
      expect(down.stdout).toMatch(/⏸ task \w{8} paused in model_wait: The model did not answer: The LLM at .* answered HTTP 503 \(2 attempts\)/)
      expect(down.stdout).toContain("The task is paused in graph_exec and keeps what it has done")
      const status = outcomeOf((yield* ws.cli(["status", "--json"])).stdout).task
      expect(status.state).toBe("model_wait")
      expect(status.graph.nodes.map((n: { id: string; status: string; retries: number }) => [n.id, n.status, n.retries])).toEqual([["first", "complete", 0], ["answer", "pending", 0]])
      expect(down.stdout).toContain(`next: luallm-agent resume --task ${short(status.id)}`)

      // Still down: it pauses again, nothing re-runs.
      const again = yield* ws.cli(["resume", "--json"])
      expect(again.code).toBe(ExitCodes.paused)
      expect(outcomeOf(again.stdout)).toMatchObject({ task_id: status.id, state: "model_wait" })

      yield* ws.server.setOutage(null)
      const resumed = yield* ws.cli(["resume", "--json"])
      expect(resumed.code).toBe(ExitCodes.ok)
      expect(outcomeOf(resumed.stdout)).toMatchObject({ task_id: status.id, state: "complete", result: { answer: "Hello." } })
      expect(ws.marks()).toEqual(["a"])
    }))

  it.scopedLive("while drafting a skill (the model stays silent past limits.llm_timeout_seconds): paused; resume goes on to the approval", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      yield* ws.server.setOutage("silent", (message) => message.startsWith("Job: write a missing skill"))
      const down = yield* ws.cli(["run", "shout hi", "--json"])
      expect(down.code).toBe(ExitCodes.paused)
      const paused = outcomeOf(down.stdout)
      expect(paused).toMatchObject({ state: "model_wait", paused: { reason: "model" } })
      expect(paused.paused.message).toContain("sent nothing for 1s (limits.llm_timeout_seconds")
      expect(paused.paused.message).toContain("paused in skill_draft")

      yield* ws.server.setOutage(null)
      const resumed = yield* ws.cli(["resume", "--task", short(paused.task_id), "--json"])
      expect(resumed.code).toBe(ExitCodes.paused)
      expect(outcomeOf(resumed.stdout)).toMatchObject({ task_id: paused.task_id, state: "approval", paused: { reason: "approval" } })
    }))
})

describe("--json prints one outcome on stdout, whatever happens", () => {
  it.scopedLive("when the command fails mid-task (an answer that is not JSON) and before any task exists; the exit code stays the error's", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      // The planning model answers an HTML page: an error about the answer, not a pause.
      const badConfig = join(ws.home, "bad.json")
      const config = JSON.parse(readFileSync(join(ws.home, "config.json"), "utf8"))
      writeFileSync(badConfig, JSON.stringify({ ...config, model_policy: { ...config.model_policy, planning: "not-json" } }))
      const failed = yield* Effect.promise(() =>
        runCliAsync(["--config", badConfig, "--log-level", "warning", "run", "greet me", "--json"], { env: { HOME: ws.home }, cwd: ws.home, timeoutMs: 60_000 })
      )
      expect(failed.code).toBe(ExitCodes.failure)
      const outcome = outcomeOf(failed.stdout)
      expect(outcome).toMatchObject({ state: "planning", result: null, next_command: `luallm-agent resume --task ${short(outcome.task_id)}` })
      expect(outcome.error).toContain("its body is not JSON")
      expect(failed.stderr).toContain("error: The LLM at")

      const noConfig = yield* Effect.promise(() =>
        runCliAsync(["--config", join(ws.home, "missing.json"), "run", "greet me", "--json"], { env: { HOME: ws.home }, cwd: ws.home })
      )
      expect(noConfig.code).toBe(ExitCodes.failure)
      expect(outcomeOf(noConfig.stdout)).toMatchObject({ task_id: null, state: null, next_command: null })
      expect(outcomeOf(noConfig.stdout).error).toContain("missing.json")
    }))
})

describe("resume --retry-failed", () => {
  it.scopedLive("runs the failed node and the ones skipped because of it again; the completed skill does not run again", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const failed = yield* ws.cli(["run", "read the input", "--json"])
      expect(failed.code).toBe(ExitCodes.failure)
      const outcome = outcomeOf(failed.stdout)
      const id: string = outcome.task_id
      expect(outcome).toMatchObject({ state: "failed", next_command: `luallm-agent resume --task ${short(id)} --retry-failed` })
      expect(outcome.error).toContain(`\`luallm-agent resume --task ${short(id)} --retry-failed\` runs the failed nodes again`)
      expect(ws.marks()).toEqual(["a"])

      // Plain resume says what does retry it.
      const plain = yield* ws.cli(["resume", "--task", short(id)])
      expect(plain.code).toBe(ExitCodes.failure)
      expect(plain.stderr).toContain("(it had failed before; `resume` alone does not run it again)")
      expect(plain.stderr).toContain(
        `next: luallm-agent resume --task ${short(id)} --retry-failed   (runs the failed node input again; completed nodes keep their results)`
      )

      // The cause fixed, the retry (of the most recent failed task) completes it.
      writeFileSync(join(ws.dataDir, "input.txt"), "some text")
      const retried = yield* ws.cli(["resume", "--retry-failed", "--json"])
      expect(retried.code).toBe(ExitCodes.ok)
      expect(outcomeOf(retried.stdout)).toMatchObject({ task_id: id, state: "complete", result: { answer: "A summary." } })
      expect(ws.marks()).toEqual(["a"])

      // Nothing left to retry: said in one line, with what to do instead.
      const none = yield* ws.cli(["resume", "--retry-failed", "--task", short(id)])
      expect(none.code).toBe(ExitCodes.failure)
      expect(none.stderr.trim()).toBe(`error: Task ${short(id)} is complete: there is nothing to retry. Start a new one with \`luallm-agent run "<request>"\`.`)
    }))
})

describe("after a human decided", () => {
  it.scopedLive("status after approvals reject no longer offers approve: it says the task fails with the reason, which resume then does", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const paused = outcomeOf((yield* ws.cli(["run", "shout hi", "--json"])).stdout)
      expect(paused).toMatchObject({ state: "approval", paused: { reason: "approval" } })
      const id: string = paused.task_id
      expect((yield* ws.cli(["status"])).stdout).toContain("luallm-agent approvals approve")
      const [pending] = outcomeOf((yield* ws.cli(["approvals", "list", "--json"])).stdout) as ReadonlyArray<{ id: string }>
      expect((yield* ws.cli(["approvals", "reject", pending?.id ?? "", "--reason", "too loud"])).code).toBe(ExitCodes.ok)

      const status = yield* ws.cli(["status"])
      expect(status.stdout).not.toContain("approvals approve")
      expect(status.stdout).toContain("rejected: the drafted skill shout was rejected (too loud); the task fails with that reason when it is continued.")
      expect(status.stdout).toContain(`next: luallm-agent resume --task ${short(id)}`)
      const json = outcomeOf((yield* ws.cli(["status", "--json"])).stdout)
      expect(json).toMatchObject({ decided_approval: { status: "rejected", reason: "too loud", skill_name: "shout" }, next_command: `luallm-agent resume --task ${short(id)}` })

      const resumed = yield* ws.cli(["resume", "--json"])
      expect(resumed.code).toBe(ExitCodes.failure)
      expect(outcomeOf(resumed.stdout)).toMatchObject({ task_id: id, state: "failed" })
      expect(outcomeOf(resumed.stdout).error).toContain("too loud")
    }))

  it.scopedLive("reset leaves no pending approval behind, and approving it afterwards says its task was discarded", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const paused = outcomeOf((yield* ws.cli(["run", "shout hi", "--json"])).stdout)
      const [pending] = outcomeOf((yield* ws.cli(["approvals", "list", "--json"])).stdout) as ReadonlyArray<{ id: string }>
      expect((yield* ws.cli(["reset", "--task", short(paused.task_id)])).code).toBe(ExitCodes.ok)
      expect(outcomeOf((yield* ws.cli(["approvals", "list", "--json"])).stdout)).toEqual([])
      const approve = yield* ws.cli(["approvals", "approve", short(pending?.id ?? "")])
      expect(approve.code).toBe(ExitCodes.failure)
      expect(approve.stderr).toContain("was already rejected (its task was discarded with reset); a decision is final.")
    }))
})
