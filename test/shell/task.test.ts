import { describe, expect, it } from "@effect/vitest"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { runCli } from "../support/cli.ts"

// Both tests use the demo's fixed directory, so they run in order in this one file.
const demoDir = "/tmp/luallm-agent-demo"
const cassette = `${process.cwd()}/test/fixtures/demo/cassette.jsonl`
const prompt = `How many words are in ${demoDir}/data/notes.txt? Tell me in one sentence.`
const env = { HOME: tmpdir() }

describe("the demo and the task commands", () => {
  it("demo replays the recorded session to complete and says it is a replay", () => {
    const run = runCli(["demo"], { env, timeoutMs: 60_000 })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("a REPLAY, no model runs")
    expect(run.stdout).toContain("rework ← skill_test: tests of word_count fail (2/3)")
    expect(run.stdout).toContain("approval ← skill_test: tests of word_count pass (3/3)")
    expect(run.stdout).toContain("answer: Your notes contain 17 words.")
    expect(run.stdout).toContain(`audit log: ${demoDir}/state/audit.jsonl`)
  })

  it("run pauses with exit 3 for the approval, approvals approve promotes, resume completes", () => {
    // Keep the demo's data and config; start again without its promoted skill and task.
    for (const dir of ["skills", "state", "drafts"]) rmSync(`${demoDir}/${dir}`, { recursive: true, force: true })
    const global = ["--config", `${demoDir}/config.json`, "--llm", `replay:${cassette}`]
    const run = runCli([...global, "run", prompt, "--yes"], { env, timeoutMs: 60_000 })
    expect(run.code).toBe(3)
    expect(run.stdout).toContain("paused in approval")
    expect(run.stdout).toContain("luallm-agent approvals approve")

    const status = runCli([...global, "status", "--json"], { env })
    expect(JSON.parse(status.stdout).task.state).toBe("approval")

    const second = runCli([...global, "run", "something else", "--yes"], { env })
    expect(second.code).toBe(1)
    expect(second.stderr).toContain("luallm-agent resume")

    const list = runCli([...global, "approvals", "list", "--json"], { env })
    const [pending] = JSON.parse(list.stdout) as ReadonlyArray<{ id: string; skill_name: string }>
    expect(pending?.skill_name).toBe("word_count")

    const approve = runCli([...global, "approvals", "approve", (pending?.id ?? "").slice(0, 8)], { env })
    expect(approve.code).toBe(0)
    expect(approve.stdout).toContain("approved and promoted word_count")

    const resume = runCli([...global, "resume", "--json"], { env, timeoutMs: 60_000 })
    expect(resume.code).toBe(0)
    const outcome = JSON.parse(resume.stdout)
    expect(outcome.state).toBe("complete")
    expect(outcome.result).toEqual({ answer: "Your notes contain 17 words." })

    const reset = runCli([...global, "reset"], { env })
    expect(reset.code).toBe(0)
    expect(reset.stdout).toContain("discarded task")
    expect(runCli([...global, "status"], { env }).stdout).toContain("no task saved")
  })
})
