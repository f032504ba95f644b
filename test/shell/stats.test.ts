import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runCli } from "../support/cli.ts"

const freshHome = () => mkdtempSync(join(tmpdir(), "luallm-agent-home-"))

const line = (minute: number, event: string, data: Record<string, unknown>) =>
  JSON.stringify({ ts: `2026-01-01T10:${String(minute).padStart(2, "0")}:00.000Z`, event, task_id: "task-1", data })

/** A log rotated once: the older half in audit.jsonl.1, the newer in audit.jsonl. */
const writeLog = (home: string) => {
  const path = join(home, "audit.jsonl")
  writeFileSync(`${path}.1`, [
    line(0, "task.start", { prompt: "p" }),
    line(1, "llm.call", { purpose: "plan", model: "m-a", node: null, duration_ms: 100, prompt_tokens: 10, completion_tokens: 5 }),
    line(2, "plan.accepted", { attempt: 1, nodes: 2, missing: ["word_count"] }),
    line(3, "task.transition", { from: "planning", to: "skill_draft", reason: "r", step: 2 })
  ].join("\n") + "\n")
  writeFileSync(path, [
    line(4, "llm.call", {
      purpose: "skill.draft",
      model: "m-a",
      node: null,
      duration_ms: 300,
      prompt_tokens: 20,
      completion_tokens: 7,
      timings: { cache_n: 15, prompt_n: 5, predicted_n: 7, predicted_ms: 350 }
    }),
    line(5, "approval.create", { id: "ap", skill: "word_count", tests: 3 }),
    line(6, "task.paused", { reason: "approval", next: "luallm-agent resume" }),
    "not json"
  ].join("\n") + "\n")
  return { HOME: home, LUALLM_AGENT_AUDIT_PATH: path }
}

describe("luallm-agent stats", () => {
  it("prints the figures of the log and its rotated file, and warns about a bad line", () => {
    const home = freshHome()
    const run = runCli(["stats"], { env: writeLog(home), cwd: home })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("LLM calls: 2, avg 200 ms, p95 300 ms; tokens: 30 prompt + 12 completion")
    expect(run.stdout).toMatch(/model\s+calls\s+failed\s+avg\s+p95\s+prompt tok\s+completion tok\s+cache hit\s+tok\/s/)
    // The draft call's timings: 15 of 20 prompt tokens from the cache, 7 tokens in 0.35 s.
    expect(run.stdout).toMatch(/m-a\s+2\s+0\s+200 ms\s+300 ms\s+30\s+12\s+75%\s+20\.0/)
    expect(run.stdout).toContain("Skill drafts: 1 started, 1 reached approval (100%); 0 reworks, 0.00 retries per skill")
    expect(run.stdout).toContain("Tasks: 1 (0 complete, 0 failed, 0 declined, 1 paused, 0 unfinished)")
    expect(run.stderr).toContain("1 line(s) of the audit log are not valid audit lines")
  })

  it("prints the same figures as JSON with --json, filtered by --since", () => {
    const home = freshHome()
    const run = runCli(["stats", "--json", "--since", "2026-01-01T10:04"], { env: writeLog(home), cwd: home })
    expect(run.code).toBe(0)
    const stats = JSON.parse(run.stdout)
    expect(stats.since).toBe("2026-01-01T10:04:00.000Z")
    expect(stats.llm.calls).toEqual({ count: 1, mean_ms: 300, p95_ms: 300 })
    expect(stats.invalid_lines).toBe(1)
  })

  it("says there is no data for an empty log, without NaN", () => {
    const home = freshHome()
    const run = runCli(["stats"], { env: { HOME: home, LUALLM_AGENT_AUDIT_PATH: join(home, "none.jsonl") }, cwd: home })
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`No data: the audit log ${join(home, "none.jsonl")} has no lines.`)
    expect(run.stdout).not.toContain("NaN")
  })

  it("refuses a --since that is not a date with one clear message and exit 1", () => {
    const home = freshHome()
    const run = runCli(["stats", "--since", "last tuesday"], { env: { HOME: home }, cwd: home })
    expect(run.code).toBe(1)
    expect(run.stderr.trim()).toBe(
      `error: --since "last tuesday" is not a date, so no figures were computed. Give an ISO date (2024-05-01) or date-time (2024-05-01T13:30:00Z; without an offset it is UTC, like the audit log's timestamps).`
    )
  })
})
