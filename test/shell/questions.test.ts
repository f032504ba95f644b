/**
 * The agent's questions where a CLI user meets them. On a terminal (a pseudo-terminal here) the
 * plan is shown and confirmed before anything runs, a drafted skill is reviewed in the same run,
 * and a skill that runs commands is granted exec for this task only; without a terminal each
 * question pauses the task once (exit 3) with the exact command that continues it.
 * `run --plan-only` prints the plan and saves nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { configInside } from "../../src/core/config.ts"
import { builtinSkillsDir } from "../../src/packageRoot.ts"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCliAsync, runCliInTerminal } from "../support/cli.ts"
import { openAiServer } from "../support/openaiServer.ts"

const doubleSkill = `/* @skill {"name": "double", "version": "1.0.0", "description": "Doubles a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 2 }
`
const doubleTests = `const { run } = require("double")
test("doubles 2", () => { assert.equal(run({ n: 2 }), 4) })
`

/**
 * A model server: "Double 21" plans a missing `double` and drafts it; "Count the lines" plans one
 * shell_safe node over `notes`.
 */
const model = (notes: string) =>
  openAiServer({
    reply: (message) =>
      message.includes("Request: Double 21")
        ? JSON.stringify({ nodes: [{ id: "d", action: "skill", skill_name: "double", skill_args: { n: 21 }, description: "Return twice the number n." }] })
        : message.includes("Request: Count the lines")
        ? JSON.stringify({ nodes: [{ id: "lines", action: "skill", skill_name: "shell_safe", skill_args: { command: "wc", args: ["-l", notes] } }] })
        : message.includes("Write the skill file")
        ? "```js\n" + doubleSkill + "```"
        : message.includes("Write double.test.js")
        ? doubleTests
        : "?"
  })

/** A home with a config (plans confirmed under the default `prompt` tier), a notes file and a model. */
const workspace = Effect.gen(function*() {
  const home = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-questions-")))
  mkdirSync(join(home, "data"))
  const notes = join(home, "data", "notes.txt")
  writeFileSync(notes, "one\ntwo\nthree\n")
  const server = yield* model(notes)
  const base = configInside(home, { builtinSkillsDir, allowedPaths: [`${home}/data/**`] })
  const config = join(home, "config.json")
  writeFileSync(config, JSON.stringify({ ...base, llm: { ...base.llm, base_url: server.url } }))
  const env = { HOME: home, NO_COLOR: "1" }
  const cli = (args: ReadonlyArray<string>) => Effect.promise(() => runCliAsync(["--config", config, ...args], { env, cwd: home, timeoutMs: 60_000 }))
  const terminal = (args: ReadonlyArray<string>, keys: ReadonlyArray<{ readonly waitFor: string; readonly key: string }>) =>
    Effect.promise(() => runCliInTerminal(["--config", config, ...args], env, keys, { cwd: home }))
  /** The one saved task, as `status --json` shows it. */
  const saved = Effect.map(cli(["status", "--json"]), (run) => JSON.parse(run.stdout).task)
  return { home, notes, base, cli, terminal, saved }
})

describe("on a terminal", () => {
  it.scopedLive("run shows the plan before anything runs and asks; n ends the task declined with exit 0, nothing drafted", () =>
    Effect.gen(function*() {
      const { base, home, saved, terminal } = yield* workspace
      const run = yield* terminal(["run", "Double 21"], [{ waitFor: "Run this plan?", key: "n" }])
      expect(run.output).toContain("Plan for: Double 21")
      expect(run.output).toContain("d [skill double (to be drafted)]")
      expect(run.output).toContain("drafted first (each tested, then shown to a human before it is trusted): double — Return twice the number n.")
      expect(run.output.indexOf("Plan for: Double 21")).toBeLessThan(run.output.indexOf("Run this plan?"))
      expect(run.output).toMatch(/task [0-9a-f]{8} declined: The plan was declined; nothing ran and no skill was drafted\./)
      expect(run.code).toBe(ExitCodes.ok)
      expect((yield* saved).state).toBe("declined")
      expect(existsSync(join(base.skills.agent_dir, "double.js"))).toBe(false)
      expect(existsSync(join(home, "skills", "double.js"))).toBe(false)
    }))

  it.scopedLive("y runs the plan; the drafted skill's review comes up in the same run, and Y promotes it and completes the task", () =>
    Effect.gen(function*() {
      const { base, terminal } = yield* workspace
      const run = yield* terminal(["run", "Double 21"], [{ waitFor: "Run this plan?", key: "y" }, { waitFor: "[Y]es (promote)", key: "y" }])
      expect(run.output).toContain("Skill double 1.0.0")
      expect(run.output).toContain("✅ doubles 2")
      expect(run.output).toMatch(/✓ task [0-9a-f]{8} complete/)
      expect(run.output).toContain("d: 42")
      expect(run.code).toBe(ExitCodes.ok)
      expect(existsSync(join(base.skills.allowed_dir, "double.js"))).toBe(true)
    }))

  it.scopedLive("a skill that runs commands is shown with its command and asked for; y grants exec for this task, recorded in the task and the audit log", () =>
    Effect.gen(function*() {
      const { cli, notes, saved, terminal } = yield* workspace
      const run = yield* terminal(["run", "Count the lines"], [
        { waitFor: "Run this plan?", key: "y" },
        { waitFor: "Grant exec to skill shell_safe for this task?", key: "y" }
      ])
      expect(run.output).toContain(`lines [skill shell_safe]  ·  paths: ${notes}  ·  may reach: /** (within allowed_paths)  ·  runs commands: wc -l ${notes}`)
      expect(run.output).toContain("runs commands on this machine (exec is asked for before the graph runs): shell_safe")
      expect(run.output).toContain(`Skill shell_safe runs commands on this machine (the exec capability), for these nodes:\n  lines: wc -l ${notes}`)
      expect(run.output).toMatch(/✓ task [0-9a-f]{8} complete/)
      expect(run.output).toContain(`"stdout": "3 ${notes}\\n"`)
      expect(run.code).toBe(ExitCodes.ok)
      const task = yield* saved
      expect(task.exec_grants).toEqual([{ skill: "shell_safe", by: "the terminal", at: expect.any(String) }])
      const log = yield* cli(["log", "--task", task.id, "--json"])
      const granted = log.stdout.split("\n").filter((line) => line.includes(`"exec.granted"`)).map((line) => JSON.parse(line))
      expect(granted.map((entry) => entry.data)).toEqual([{ skill: "shell_safe", by: "the terminal", nodes: ["lines"], commands: [`lines: wc -l ${notes}`] }])
    }))

  it.scopedLive("resume on a terminal reviews a draft a script left paused; n with a reason rejects it and the task fails with that reason", () =>
    Effect.gen(function*() {
      const { base, cli, terminal } = yield* workspace
      const paused = yield* cli(["run", "Double 21", "--yes"])
      expect(paused.code).toBe(ExitCodes.paused)
      expect(paused.stdout).toMatch(/next: luallm-agent resume --task [0-9a-f]{8} {3}\(or: luallm-agent approvals approve [0-9a-f]{8} && luallm-agent resume --task [0-9a-f]{8}\)/)
      const run = yield* terminal(["resume"], [{ waitFor: "[N]o (reject)", key: "n" }, { waitFor: "Reason for rejecting", key: "too clever\r" }])
      expect(run.output).toContain("Skill double 1.0.0")
      expect(run.output).toMatch(/✗ task [0-9a-f]{8} failed\nA human rejected the drafted skill "double": too clever\./)
      expect(run.code).toBe(ExitCodes.failure)
      expect(existsSync(join(base.skills.allowed_dir, "double.js"))).toBe(false)
    }))
})

describe("without a terminal", () => {
  it.scopedLive("each question pauses the task once (exit 3) with the command that continues it; the printed commands finish it", () =>
    Effect.gen(function*() {
      const { cli, notes, saved } = yield* workspace
      const first = yield* cli(["run", "Count the lines"])
      expect(first.code).toBe(ExitCodes.paused)
      // The plan is shown, and the command that confirms it.
      expect(first.stdout).toContain(`lines [skill shell_safe]  ·  paths: ${notes}`)
      const confirm = /next: (luallm-agent resume --task [0-9a-f]{8} --yes)\n/.exec(first.stdout)?.[1]
      expect(confirm).toBeDefined()
      expect(first.stdout).toContain("waits for a human to confirm it (approval_tiers.task_confirmation is \"prompt\"); nothing has run.")
      // `status` shows the plan it waits with.
      const status = yield* cli(["status"])
      expect(status.stdout).toContain(`Plan for: Count the lines\n  lines [skill shell_safe]  ·  paths: ${notes}`)

      const second = yield* cli((confirm ?? "").split(" ").slice(1))
      expect(second.code).toBe(ExitCodes.paused)
      expect(second.stdout).toContain(`Skill shell_safe runs commands on this machine (to run: lines: wc -l ${notes}) and needs the exec capability`)
      const grant = /next: (luallm-agent resume --task [0-9a-f]{8} --allow-exec)\n/.exec(second.stdout)?.[1]
      expect(grant).toBeDefined()
      expect(`${second.stdout}${second.stderr}`).not.toContain("Refused")

      const third = yield* cli((grant ?? "").split(" ").slice(1))
      expect(third.code).toBe(ExitCodes.ok)
      expect(third.stdout).toContain(`"stdout": "3 ${notes}\\n"`)
      const task = yield* saved
      expect(task.exec_grants.map((grant: { skill: string; by: string }) => [grant.skill, grant.by])).toEqual([["shell_safe", "--allow-exec"]])
      const log = yield* cli(["log", "--task", task.id, "--json"])
      const pauses = log.stdout.split("\n").filter((line) => line.includes(`"task.paused"`)).map((line) => JSON.parse(line).data.reason)
      expect(pauses).toEqual(["confirmation", "exec"])
    }))

  it.scopedLive("run --yes --allow-exec runs such a task in one go", () =>
    Effect.gen(function*() {
      const { cli, notes } = yield* workspace
      const run = yield* cli(["run", "Count the lines", "--yes", "--allow-exec", "--json"])
      expect(run.code).toBe(ExitCodes.ok)
      expect(JSON.parse(run.stdout)).toMatchObject({ state: "complete", result: { lines: { stdout: `3 ${notes}\n` } } })
    }))
})

describe("run --plan-only", () => {
  it.scopedLive("prints the plan and exits 0: nothing is drafted or run, and no task is saved", () =>
    Effect.gen(function*() {
      const { base, cli } = yield* workspace
      const run = yield* cli(["run", "--plan-only", "Double 21"])
      expect(run.code).toBe(ExitCodes.ok)
      expect(run.stdout).toContain("Plan for: Double 21\n  d [skill double (to be drafted)]")
      expect(run.stdout).toContain("plan only: nothing ran and no task was saved; `luallm-agent run 'Double 21'` plans it again and runs it")
      expect((yield* cli(["tasks"])).stdout).toContain("no tasks saved")
      expect(existsSync(join(base.skills.agent_dir, "double.js"))).toBe(false)
      const log = yield* cli(["log", "--json"])
      expect(log.stdout).toContain(`"task.plan_only"`)
      expect(log.stdout).not.toContain(`"task.start"`)
    }))

  it.scopedLive("--json gives the plan with its paths and the skills that need exec", () =>
    Effect.gen(function*() {
      const { cli, notes } = yield* workspace
      const run = yield* cli(["run", "Count the lines", "--plan-only", "--json"])
      expect(run.code).toBe(ExitCodes.ok)
      const shown = JSON.parse(run.stdout)
      expect(shown).toMatchObject({ plan_only: true, saved: false, request: "Count the lines", state: "confirmation", error: null })
      expect(shown.plan).toEqual({
        nodes: [{
          id: "lines",
          action: "skill",
          depends_on: [],
          uses: "shell_safe",
          drafted: false,
          paths: [notes],
          inputs: [],
          may_reach: ["/**"],
          exec: true,
          command: `wc -l ${notes}`
        }],
        drafts: [],
        exec_skills: ["shell_safe"]
      })
    }))
})
