/**
 * Several tasks through the CLI, as a user meets them: `tasks` lists them, `status`, `log` and
 * `reset` take `--task ID` (a prefix will do), an approval names its task and `resume` of an
 * approved draft continues that task and no other. Two tasks each draft a skill and pause for
 * its approval; the scripted model's answers are replayed from a cassette.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { runCli } from "../support/cli.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const skill = (name: string, factor: number) => `/* @skill {"name": "${name}", "version": "1.0.0", "description": "Multiplies a number by ${factor}", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * ${factor} }
`
const tests = (name: string, factor: number) => `const { run } = require("${name}")
test("multiplies 2", () => { assert.equal(run({ n: 2 }), ${2 * factor}) })
test("multiplies 0", () => { assert.equal(run({ n: 0 }), 0) })
`
const plan = (name: string, n: number) =>
  JSON.stringify({ nodes: [{ id: "out", action: "skill", skill_name: name, skill_args: { n }, description: `Return n times the factor of ${name}.` }] })

const doublePrompt = "Double 21."
const triplePrompt = "Triple 5."

/** Two requests, each needing a skill that does not exist yet. */
const twoDrafts = (): ScriptedTask => ({
  prompt: doublePrompt,
  morePrompts: [triplePrompt],
  skills: [],
  script: [
    FakeReply.content(plan("double", 21), { when: `Request: ${doublePrompt}` }),
    FakeReply.content(skill("double", 2), { when: `Write the skill file for "double"` }),
    FakeReply.content(tests("double", 2), { when: "Write double.test.js" }),
    FakeReply.content(plan("triple", 5), { when: `Request: ${triplePrompt}` }),
    FakeReply.content(skill("triple", 3), { when: `Write the skill file for "triple"` }),
    FakeReply.content(tests("triple", 3), { when: "Write triple.test.js" })
  ]
})

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir }, timeoutMs: 60_000 })
const json = (ws: Workspace, args: ReadonlyArray<string>) => JSON.parse(cli(ws, [...args, "--json"]).stdout)

interface Listed {
  readonly id: string
  readonly state: string
  readonly prompt: string
}

describe("several tasks through the CLI", () => {
  it.scopedLive("tasks lists them; status, log and reset take --task; an approval resumes only its own task", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, twoDrafts)

      const first = cli(ws, ["run", doublePrompt, "--yes"])
      expect(first.code).toBe(3)
      const second = cli(ws, ["run", triplePrompt, "--yes"])
      expect(second.code).toBe(3)

      const listed: ReadonlyArray<Listed> = json(ws, ["tasks"]).tasks
      const byPrompt = (prompt: string) => listed.find((t) => t.prompt === prompt)?.id ?? ""
      const [a, b] = [byPrompt(doublePrompt), byPrompt(triplePrompt)]
      expect(listed.map((t) => t.state)).toEqual(["approval", "approval"])
      expect(second.stderr).toContain(`note: starting a new task; 1 other unfinished task (${a.slice(0, 8)} approval)`)
      expect(first.stdout).toContain(`next: luallm-agent resume --task ${a.slice(0, 8)}`)

      const table = cli(ws, ["tasks"])
      expect(table.stdout).toMatch(/^id\s+state\s+age\s+request$/m)
      expect(table.stdout).toMatch(new RegExp(`^${a.slice(0, 8)}\\s+approval\\s+\\d+[smhd]\\s+Double 21\\.$`, "m"))
      expect(table.stdout).toMatch(new RegExp(`^${b.slice(0, 8)}\\s+approval\\s+\\d+[smhd]\\s+Triple 5\\.$`, "m"))

      // Each approval names its task.
      const pending: ReadonlyArray<{ id: string; skill_name: string; task_id: string }> = json(ws, ["approvals", "list"])
      expect(pending.map((p) => [p.skill_name, p.task_id]).sort()).toEqual([["double", a], ["triple", b]])
      expect(cli(ws, ["approvals", "list"]).stdout).toContain(`task ${a.slice(0, 8)}`)
      const approvalOf = (name: string) => pending.find((p) => p.skill_name === name)?.id ?? ""

      const approve = cli(ws, ["approvals", "approve", approvalOf("double").slice(0, 8)])
      expect(approve.code).toBe(0)
      expect(approve.stdout).toContain(`next: luallm-agent resume --task ${a.slice(0, 8)}`)

      // The other task is still waiting for its own human: resuming it changes nothing.
      const other = cli(ws, ["resume", "--task", b.slice(0, 8), "--json"])
      expect(other.code).toBe(3)
      expect(JSON.parse(other.stdout)).toMatchObject({ task_id: b, state: "approval" })

      const done = cli(ws, ["resume", "--task", a.slice(0, 8), "--json"])
      expect(done.code).toBe(0)
      expect(JSON.parse(done.stdout)).toMatchObject({ task_id: a, state: "complete", result: { out: 42 } })
      expect(json(ws, ["status", "--task", b.slice(0, 6)]).task).toMatchObject({ id: b, state: "approval" })
      // With no --task: the most recent unfinished one.
      expect(json(ws, ["status"]).task.id).toBe(b)

      // The log of one task: its own lines only, the human's decision among them.
      const lines: ReadonlyArray<{ event: string; task_id: string | null; data: Record<string, unknown> }> = cli(ws, ["log", "--task", a.slice(0, 8), "--json"])
        .stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
      expect(new Set(lines.map((line) => line.task_id))).toEqual(new Set([a]))
      expect(lines.map((line) => line.event)).toEqual(expect.arrayContaining(["task.start", "approval.create", "approval.resolve", "approval.promote", "task.complete"]))
      expect(lines.find((line) => line.event === "approval.resolve")?.data).toMatchObject({ approved: true })

      const unknown = cli(ws, ["status", "--task", "zzzzzzzz"])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain("error: No task zzzzzzzz in")
      expect(unknown.stderr).toContain("luallm-agent tasks")

      // Reset of the waiting task also settles its approval, so nothing points at a task that is gone.
      const reset = cli(ws, ["reset", "--task", b.slice(0, 8)])
      expect(reset.code).toBe(0)
      expect(reset.stdout).toContain(`discarded task ${b.slice(0, 8)} (approval)`)
      expect(reset.stdout).toContain(`rejected its pending approval ${approvalOf("triple").slice(0, 8)}`)
      expect(json(ws, ["approvals", "list"])).toEqual([])
      expect(json(ws, ["tasks"]).tasks.map((t: Listed) => t.id)).toEqual([a])
      const afterReset = cli(ws, ["log", "--task", b, "--json"]).stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
      expect(afterReset.map((line: { event: string }) => line.event)).toEqual(expect.arrayContaining(["approval.resolve", "task.reset"]))
    }).pipe(Effect.provide(TestPlatform)), 180_000)
})

describe("where tasks are kept", () => {
  it.scopedLive("a task saved by the first wave (current_task.json) is listed, shown and resumed by the new CLI", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, twoDrafts)
      // What a first-wave process left: its task, mid-way, in the old single file.
      const first = cli(ws, ["run", doublePrompt, "--yes", "--json"])
      const id: string = JSON.parse(first.stdout).task_id
      const task = readFileSync(`${ws.config.state_dir}/tasks/${id}.jsonl`, "utf8").trim().split("\n").map((line) => JSON.parse(line).task).at(-1)
      rmSync(`${ws.config.state_dir}/tasks`, { recursive: true })
      writeFileSync(`${ws.config.state_dir}/current_task.json`, JSON.stringify(task, null, 2))

      expect(json(ws, ["tasks"]).tasks.map((t: Listed) => [t.id, t.state])).toEqual([[id, "approval"]])
      expect(existsSync(`${ws.config.state_dir}/current_task.json`)).toBe(false)
      expect(json(ws, ["status"]).task).toMatchObject({ id, state: "approval" })
      const [pending] = json(ws, ["approvals", "list"]) as ReadonlyArray<{ id: string }>
      expect(cli(ws, ["approvals", "approve", pending?.id ?? ""]).code).toBe(0)
      expect(JSON.parse(cli(ws, ["resume", "--json"]).stdout)).toMatchObject({ task_id: id, state: "complete", result: { out: 42 } })
    }).pipe(Effect.provide(TestPlatform)), 120_000)

  it.scopedLive("approving a draft whose task is gone (removed without settling its approval) says there is nothing to continue", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, twoDrafts)
      const id: string = JSON.parse(cli(ws, ["run", doublePrompt, "--yes", "--json"]).stdout).task_id
      // As a first-wave reset left it: the task gone, its approval still pending.
      rmSync(`${ws.config.state_dir}/tasks/${id}.jsonl`)
      const [pending] = json(ws, ["approvals", "list"]) as ReadonlyArray<{ id: string }>
      const approve = cli(ws, ["approvals", "approve", pending?.id ?? ""])
      expect(approve.code).toBe(0)
      expect(approve.stdout).toContain(`its task ${id.slice(0, 8)} is no longer saved, so there is nothing to continue`)
      expect(approve.stdout).not.toContain("next:")
    }).pipe(Effect.provide(TestPlatform)), 120_000)

  it("--store names the store; a value that is neither file nor a postgres:// URL, or a server that does not answer, is one clear error; config hides the password", () => {
    const home = mkdtempSync(join(tmpdir(), "luallm-agent-home-"))
    const bad = runCli(["--store", "mysql://db/agent", "tasks"], { env: { HOME: home }, cwd: home })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain(`store: expected "file" or a postgres:// URL, got "mysql://db/agent" (from --store)`)
    const down = runCli(["--store", "postgres://agent:s3cret@127.0.0.1:1/agent", "tasks"], { env: { HOME: home }, cwd: home })
    expect(down.code).toBe(1)
    expect(down.stderr).toMatch(/^error: Could not open the task store postgres:\/\/agent:\*\*\*@127\.0\.0\.1:1\/agent: .*ECONNREFUSED/m)
    expect(down.stderr).not.toContain("s3cret")
    expect(down.stderr).not.toMatch(/\n\s+at /)
    // `config` shows where the store is, never its password.
    const env = { HOME: home, LUALLM_AGENT_STORE: "postgres://agent:s3cret@127.0.0.1:1/agent" }
    const shown = runCli(["config"], { env, cwd: home })
    expect(shown.stdout).toContain(`store = "postgres://agent:***@127.0.0.1:1/agent"  ($LUALLM_AGENT_STORE)`)
    expect(JSON.parse(runCli(["config", "--json"], { env, cwd: home }).stdout).values.store).toBe("postgres://agent:***@127.0.0.1:1/agent")
    expect(`${shown.stdout}${runCli(["config", "--json"], { env, cwd: home }).stdout}`).not.toContain("s3cret")
  })
})
