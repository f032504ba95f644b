/**
 * Ctrl-C and SIGTERM stop a run at once with the task saved, through the bundled CLI: the
 * running skill loops on host calls (the state in which the CLI used to ignore both signals,
 * its one thread busy inside the sandbox), the signal comes, the process is gone within two
 * seconds with exit code 130, its task is still saved in `graph_exec` with its lock released, and
 * `resume` completes it. The skill loops until a release file exists (no timing involved in
 * what it does); its own time limit (10 s) is far beyond what the test waits.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { ExitCodes } from "../../src/shell/exit.ts"
import { runCli } from "../support/cli.ts"
import { exited, startCli, waitUntil } from "../support/cliProcess.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

/** Reads a file over and over, one host call after another, until the release file exists. */
const spinSkill = (dataDir: string) => `/* @skill {"name": "spin_until_released", "version": "1.0.0", "description": "Reads a file until the release file exists", "paths": ["${dataDir}/**"], "public_functions": ["run"]} */
export function run() {
  let reads = 0
  while (!fs.exists("${dataDir}/release")) reads += fs.readFile("${dataDir}/input.txt").length
  return "released"
}
`

/** A task whose plan is one node running the skill `name` (its code made for the task's data dir). */
const oneSkillTask = (prompt: string, node: string, name: string, code: (dataDir: string) => string) => (dataDir: string): ScriptedTask => ({
  prompt,
  skills: [{ name, code: code(dataDir) }],
  script: [FakeReply.content(JSON.stringify({ nodes: [{ id: node, action: "skill", skill_name: name, skill_args: {} }] }), { when: "Request:" })]
})

const spinningTask = oneSkillTask("Spin until released.", "spin", "spin_until_released", spinSkill)

/** A workspace whose task spins; released while the cassette is recorded, held afterwards. */
const setUp = Effect.gen(function*() {
  const dir = yield* tempDir
  mkdirSync(`${dir}/data`)
  writeFileSync(`${dir}/data/input.txt`, "x".repeat(4096))
  writeFileSync(`${dir}/data/release`, "")
  const ws = yield* prepareWorkspace(dir, spinningTask)
  rmSync(`${ws.dataDir}/release`)
  return ws
})

/**
 * Counts the lines of a 1 TiB sparse file with `wc -l` (minutes of reading zeros, little
 * memory) until the release file exists: the worker thread waits inside one blocking host call
 * the whole time, the state the CLI used to hold on to until the skill's deadline.
 */
const execSkill = (dataDir: string) => `/* @skill {"name": "count_until_released", "version": "1.0.0", "description": "Counts the lines of a huge file until the release file exists", "paths": ["${dataDir}/**"], "capabilities": ["exec"], "public_functions": ["run"]} */
export function run() {
  while (!fs.exists("${dataDir}/release")) exec("wc", ["-l", "${dataDir}/huge"])
  return "released"
}
`

const execTask = oneSkillTask("Count until released.", "count", "count_until_released", execSkill)

/** The pids of the processes whose command line names `path` (Linux). */
const processesNaming = (path: string): ReadonlyArray<string> =>
  readdirSync("/proc").filter((pid) => {
    if (!/^\d+$/.test(pid)) return false
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(path)
    } catch {
      return false
    }
  })

/** The skill is running: its run started and it has already made host calls for a while. */
const spinning = (ws: Workspace) => () =>
  existsSync(ws.config.audit.path) && readFileSync(ws.config.audit.path, "utf8").includes(`"event":"skill.start"`)

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir }, timeoutMs: 60_000 })

describe("signals during a skill run", () => {
  it.scopedLive.each(["SIGINT", "SIGTERM"] as const)("%s stops the CLI within 2 s, the task stays saved, and resume completes it", (signal) =>
    Effect.gen(function*() {
      const ws = yield* setUp
      const child = startCli(ws, ["run", ws.prompt, "--yes"])
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
      yield* waitUntil("the skill runs", spinning(ws))
      yield* Effect.sleep("300 millis")
      expect(child.exitCode).toBeNull()

      const sent = Date.now()
      child.kill(signal)
      const code = yield* exited(child)
      expect(Date.now() - sent).toBeLessThan(2_000)
      expect(code).toBe(ExitCodes.interrupted)

      const status = cli(ws, ["status", "--json"])
      expect(status.stderr).toBe("")
      const saved = (JSON.parse(status.stdout) as { task: { id: string; state: string } }).task
      expect(saved.state).toBe("graph_exec")
      // The interrupted process released its task's lock: the next command does not wait for it.
      expect(existsSync(`${ws.config.state_dir}/tasks/${saved.id}.lock`)).toBe(false)

      writeFileSync(`${ws.dataDir}/release`, "")
      const resume = cli(ws, ["resume", "--json", "--log-level", "warning"])
      expect(resume.stderr).toBe("")
      expect(JSON.parse(resume.stdout)).toMatchObject({ task_id: saved.id, state: "complete", result: { spin: "released" } })
    }).pipe(Effect.provide(TestPlatform)), 90_000)

  it.scopedLive.each(["SIGINT", "SIGTERM"] as const)(
    "%s during a blocking exec stops the CLI within 2 s and the command with it, the task stays saved, and resume completes it",
    (signal) =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        mkdirSync(`${dir}/data`)
        writeFileSync(`${dir}/data/release`, "")
        const ws = yield* prepareWorkspace(dir, execTask)
        // exec is granted on the task path by the skill_exec tier.
        const configFile = ws.globalArgs[1] ?? ""
        const config = JSON.parse(readFileSync(configFile, "utf8"))
        writeFileSync(configFile, JSON.stringify({ ...config, approval_tiers: { ...config.approval_tiers, skill_exec: "auto" }, limits: { ...config.limits, skill_timeout_seconds: 60 } }))
        const huge = `${ws.dataDir}/huge`
        const fd = openSync(huge, "w")
        ftruncateSync(fd, 2 ** 40)
        closeSync(fd)
        rmSync(`${ws.dataDir}/release`)

        const child = startCli(ws, ["run", ws.prompt, "--yes"])
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            child.kill("SIGKILL")
            for (const pid of processesNaming(huge)) process.kill(Number(pid), "SIGKILL")
          })
        )
        yield* waitUntil("wc runs", () => processesNaming(huge).length > 0)
        yield* Effect.sleep("300 millis")
        expect(child.exitCode).toBeNull()

        const sent = Date.now()
        child.kill(signal)
        const code = yield* exited(child)
        expect(Date.now() - sent).toBeLessThan(2_000)
        expect(code).toBe(ExitCodes.interrupted)
        expect(processesNaming(huge)).toEqual([])

        const status = cli(ws, ["status", "--json"])
        expect((JSON.parse(status.stdout) as { task: { state: string } }).task.state).toBe("graph_exec")

        writeFileSync(`${ws.dataDir}/release`, "")
        const resume = cli(ws, ["resume", "--json", "--log-level", "warning"])
        expect(resume.stderr).toBe("")
        expect(JSON.parse(resume.stdout)).toMatchObject({ state: "complete", result: { count: "released" } })
      }).pipe(Effect.provide(TestPlatform)),
    90_000
  )
})
