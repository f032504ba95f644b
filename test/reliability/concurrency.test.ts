/**
 * Two agent processes on one state directory, through the bundled CLI: while a `run` works,
 * a second `run`, a `resume` and a `reset` are refused at once with the lock message naming the
 * running pid, and the running task is untouched. The first process holds the lock for as long
 * as the test wants: its skill waits for a release file (no timing involved).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { Task } from "../../src/core/task.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { makeStateStore } from "../../src/layers/State.ts"
import { runCli } from "../support/cli.ts"
import { exited, startCli, waitUntil } from "../support/cliProcess.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

/** Runs until `${dataDir}/release` exists (checked every 50 ms, given up after 9 s). */
const waitSkill = (dataDir: string) => `/* @skill {"name": "wait_for_release", "version": "1.0.0", "description": "Waits until the release file exists", "paths": ["${dataDir}/**"], "public_functions": ["run"]} */
export function run() {
  const giveUp = Date.now() + 9000
  while (!fs.exists("${dataDir}/release")) {
    if (Date.now() > giveUp) throw new Error("never released")
    const next = Date.now() + 50
    while (Date.now() < next) {}
  }
  return "released"
}
`

const waitingTask = (dataDir: string): ScriptedTask => ({
  prompt: "Wait for the release file.",
  skills: [{ name: "wait_for_release", code: waitSkill(dataDir) }],
  script: [
    FakeReply.content(JSON.stringify({ nodes: [{ id: "wait", action: "skill", skill_name: "wait_for_release", skill_args: {} }] }), { when: "Request:" })
  ]
})

/** A workspace whose task waits; released while the cassette is recorded, held afterwards. */
const setUp = Effect.gen(function*() {
  const dir = yield* tempDir
  mkdirSync(`${dir}/data`)
  writeFileSync(`${dir}/data/release`, "")
  const ws = yield* prepareWorkspace(dir, waitingTask)
  rmSync(`${ws.dataDir}/release`)
  return ws
})

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir } })

const lockHolder = (ws: Workspace): number | undefined => {
  const file = `${ws.config.state_dir}/agent.lock`
  if (!existsSync(file)) return undefined
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
    return typeof parsed === "object" && parsed !== null && "pid" in parsed && typeof parsed.pid === "number" ? parsed.pid : undefined
  } catch {
    return undefined // written but not yet complete
  }
}

const savedState = (ws: Workspace): string | undefined =>
  existsSync(ws.stateFile) ? (JSON.parse(readFileSync(ws.stateFile, "utf8")) as { state: string }).state : undefined

describe("two agent processes on one state directory", () => {
  it.scopedLive("while a run works, a second run, a resume and a reset are refused with the lock message naming its pid", () =>
    Effect.gen(function*() {
      const ws = yield* setUp
      const first = startCli(ws, ["run", ws.prompt, "--yes"])
      yield* Effect.addFinalizer(() => Effect.sync(() => first.kill("SIGKILL")))
      yield* waitUntil("the first run holds the lock and runs its node", () => lockHolder(ws) === first.pid && savedState(ws) === "graph_exec")

      const second = cli(ws, ["run", ws.prompt, "--yes"])
      expect(second.code).toBe(1)
      expect(second.stderr).toContain(`Another luallm-agent process (pid ${first.pid}, \`run\``)
      expect(second.stderr).toContain("Wait for it to finish or stop it")
      const resume = cli(ws, ["resume"])
      expect(resume.code).toBe(1)
      expect(resume.stderr).toContain(`(pid ${first.pid}, \`run\``)
      const reset = cli(ws, ["reset"])
      expect(reset.code).toBe(1)
      expect(reset.stderr).toContain(`(pid ${first.pid}, \`run\``)
      // Refused, not queued: the first run is still working, its task still saved.
      expect(first.exitCode).toBeNull()
      expect(savedState(ws)).toBe("graph_exec")

      writeFileSync(`${ws.dataDir}/release`, "")
      expect(yield* exited(first)).toBe(0)
      expect(JSON.parse(cli(ws, ["status", "--json"]).stdout).task.state).toBe("complete")
      const resetAfter = cli(ws, ["reset"])
      expect(resetAfter.code).toBe(0)
      expect(resetAfter.stdout).toContain("discarded task")
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive("a lock held by another live process (an embedding app) stops the CLI; a dead holder's lock is taken over", () =>
    Effect.gen(function*() {
      const ws = yield* setUp
      writeFileSync(`${ws.dataDir}/release`, "")
      const state = yield* makeStateStore(Task, { dir: ws.config.state_dir })
      const refused = yield* Effect.scoped(Effect.zipRight(state.lock("embedding app"), Effect.sync(() => cli(ws, ["run", ws.prompt, "--yes"]))))
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(`Another luallm-agent process (pid ${process.pid}, \`embedding app\``)
      expect(existsSync(ws.stateFile)).toBe(false)

      // A holder that died without releasing (SIGKILL) leaves its lock behind.
      const dead = spawnSync(process.execPath, ["-e", ""]).pid
      writeFileSync(`${ws.config.state_dir}/agent.lock`, JSON.stringify({ pid: dead, since: "2026-01-01T00:00:00.000Z", command: "run" }))
      const run = cli(ws, ["run", ws.prompt, "--yes", "--json", "--log-level", "warning"])
      expect(run.stderr).toBe("")
      expect(JSON.parse(run.stdout)).toMatchObject({ state: "complete", result: { wait: "released" } })
      expect(existsSync(`${ws.config.state_dir}/agent.lock`)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))
})
