import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { runCli } from "../support/cli.ts"

// Both tests use the demo's fixed directory, so they run in order in this one file.
const demoDir = "/tmp/luallm-agent-demo"
const cassette = `${process.cwd()}/demo/cassette.jsonl`
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
    const task = JSON.parse(status.stdout).task
    expect(task.state).toBe("approval")
    expect(run.stdout).toContain(`next: luallm-agent resume --task ${task.id.slice(0, 8)}`)

    const list = runCli([...global, "approvals", "list", "--json"], { env })
    const [pending] = JSON.parse(list.stdout) as ReadonlyArray<{ id: string; skill_name: string; task_id: string }>
    expect(pending?.skill_name).toBe("word_count")
    expect(pending?.task_id).toBe(task.id)

    const approve = runCli([...global, "approvals", "approve", (pending?.id ?? "").slice(0, 8)], { env })
    expect(approve.code).toBe(0)
    expect(approve.stdout).toContain("approved and promoted word_count")
    expect(approve.stdout).toContain(`next: luallm-agent resume --task ${task.id.slice(0, 8)}`)

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

  it("resume on a terminal shows the review: [V]iew, [R]erun tests, then [Y]es promotes and the task completes", async () => {
    for (const dir of ["skills", "state", "drafts"]) rmSync(`${demoDir}/${dir}`, { recursive: true, force: true })
    const global = ["--config", `${demoDir}/config.json`, "--llm", `replay:${cassette}`]
    expect(runCli([...global, "run", prompt, "--yes"], { env, timeoutMs: 60_000 }).code).toBe(3)
    // `script` gives the CLI a pseudo-terminal; each key is sent when the menu is shown.
    const command = ["node", "bin/luallm-agent.cjs", ...global, "resume"].map((a) => `'${a}'`).join(" ")
    const child = spawn("script", ["-qec", command, "/dev/null"], { env: { ...process.env, ...env, NO_COLOR: "1" } })
    const keys = ["v", "r", "y"]
    let output = ""
    let menus = 0
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8")
      const shown = output.split("[Q]uit").length - 1
      while (menus < shown) child.stdin.write(keys[menus++] ?? "q")
    })
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
      child.on("close", (status) => {
        clearTimeout(timer)
        resolve(status)
      })
    })
    expect(code).toBe(0)
    expect(output).toContain("export function countWords") // [V]iew code
    expect(output).toContain("running the tests of word_count") // [R]erun tests
    expect(output).toContain("skill word_count approved and promoted") // [Y]es, recorded and promoted by the agent
    expect(output).toContain("task")
    expect(output).toContain("complete")
    expect(output).toContain("Your notes contain 17 words.")
  })
})
