import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runCli, runCliAsync } from "../support/cli.ts"
import { openAiServer } from "../support/openaiServer.ts"

const freshHome = () => mkdtempSync(join(tmpdir(), "luallm-agent-home-"))

describe("luallm-agent doctor", () => {
  it("on a machine with no luallm and no LLM prints ✗ lines with fixes and exits 1, without a stack trace", () => {
    const home = freshHome()
    const run = runCli(["doctor"], { env: { HOME: home, PATH: "/nonexistent" }, cwd: home })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain("✓ config valid")
    expect(run.stdout).toContain("✓ state directory writable")
    expect(run.stdout).toContain("✗ luallm binary: luallm not found on PATH")
    expect(run.stdout).toContain("fix: Install luallm")
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/\n\s+at /)
  })

  it.scopedLive("checks each endpoint of llm.endpoints: kind, models, context and slots, or why it failed", () =>
    Effect.gen(function*() {
      const home = freshHome()
      const llama = yield* openAiServer({ kind: "llama-server", models: ["qwen2.5-7b"], contextTokens: 8192, slots: 4 })
      const closed = yield* Effect.scoped(openAiServer())
      const run = yield* Effect.promise(() =>
        runCliAsync(["doctor"], { env: { HOME: home, LUALLM_AGENT_LLM_ENDPOINTS: JSON.stringify([llama.url, closed.url]) }, cwd: home })
      )
      expect(run.stdout).toContain(`✓ LLM endpoint ${llama.url}: llama-server, serves qwen2.5-7b, context 8192 tokens, 4 slots`)
      expect(run.stdout).toMatch(new RegExp(`✗ LLM endpoint ${closed.url}: Could not reach the LLM at ${closed.url}/props: connect ECONNREFUSED`))
      expect(run.stdout).toContain("✓ models running: qwen2.5-7b")
      expect(run.code).toBe(1)
    }))

  it("reports an invalid config file as a failed check naming the key and the file", () => {
    const home = freshHome()
    const config = join(home, "bad.json")
    writeFileSync(config, JSON.stringify({ limits: { max_task_steps: "ten" } }))
    const run = runCli(["--config", config, "doctor"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain("✗ config valid")
    expect(run.stdout).toContain(`limits.max_task_steps: expected a positive integer, got "ten" (from ${config})`)
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/\n\s+at /)
  })

  it("prints the checks as JSON with --json", () => {
    const home = freshHome()
    const run = runCli(["doctor", "--json"], { env: { HOME: home, PATH: "/nonexistent" }, cwd: home })
    const parsed = JSON.parse(run.stdout)
    expect(parsed.ok).toBe(false)
    expect(parsed.checks.find((c: { name: string }) => c.name === "luallm binary").ok).toBe(false)
  })
})

describe("luallm-agent config", () => {
  it("prints each value with where it came from", () => {
    const home = freshHome()
    const run = runCli(["config"], { env: { HOME: home, LUALLM_AGENT_LIMITS_MAX_TASK_STEPS: "12" }, cwd: home })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("limits.max_task_steps = 12  ($LUALLM_AGENT_LIMITS_MAX_TASK_STEPS)")
    expect(run.stdout).toContain("limits.max_plan_retries = 3  (default)")
  })

  it("says that audit.path and skills.agent_dir follow a state_dir that was set", () => {
    const home = freshHome()
    const run = runCli(["config"], { env: { HOME: home, LUALLM_AGENT_STATE_DIR: join(home, "state") }, cwd: home })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`audit.path = "${join(home, "state", "audit.jsonl")}"  (default (follows state_dir))`)
    expect(run.stdout).toContain(`skills.agent_dir = "${join(home, "state", "drafts")}"  (default (follows state_dir))`)
  })

  it("exits non-zero with one clear message for a config file that does not exist", () => {
    const home = freshHome()
    const run = runCli(["--config", join(home, "missing.json"), "config"], { env: { HOME: home }, cwd: home })
    expect(run.code).not.toBe(0)
    expect(`${run.stdout}${run.stderr}`).not.toMatch(/\n\s+at /)
  })
})

describe("luallm-agent log", () => {
  it("shows the last lines, filters by task and prints raw JSON lines with --json", () => {
    const home = freshHome()
    const auditPath = join(home, "audit.jsonl")
    const line = (event: string, task: string | null, i: number) =>
      JSON.stringify({ ts: `2026-01-01T00:00:0${i}.000Z`, event, task_id: task, data: { i } })
    writeFileSync(auditPath, [line("a", null, 1), line("b", "task-1", 2), line("c", "task-2", 3), line("d", "task-1", 4)].join("\n") + "\n")
    const env = { HOME: home, LUALLM_AGENT_AUDIT_PATH: auditPath }
    const tail = runCli(["log", "--tail", "2"], { env, cwd: home })
    expect(tail.code).toBe(0)
    expect(tail.stdout.trim().split("\n").map((l) => l.split(" ").find((w) => /^[a-d]$/.test(w)))).toEqual(["c", "d"])
    const task = runCli(["log", "--task", "task-1", "--json"], { env, cwd: home })
    expect(task.stdout.trim().split("\n").map((l) => JSON.parse(l).event)).toEqual(["b", "d"])
  })
})
