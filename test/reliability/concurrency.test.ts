/**
 * Agent processes sharing one store, through the bundled CLI, on the file store and on the
 * Postgres store: while one process drives a task, a second `resume` or `reset` of that task is
 * refused at once with the lock message naming the running pid, and the task is untouched;
 * meanwhile a different task runs to completion in another process. The first process holds
 * its task for as long as the test wants: its skill waits for a release file (no timing).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { Audit, AuditTest } from "../../src/layers/Audit.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { makeFileStateStore } from "../../src/layers/store/fileState.ts"
import { runCli } from "../support/cli.ts"
import { exited, startCli, waitUntil } from "../support/cliProcess.ts"
import { postgresForSuite, postgresMissing } from "../support/postgresSuite.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const pg = postgresForSuite({ fsync: false })

/** Runs until `${dataDir}/release` exists (checked every 50 ms, given up after 50 s). */
const waitSkill = (dataDir: string) => `/* @skill {"name": "wait_for_release", "version": "1.0.0", "description": "Waits until the release file exists", "paths": ["${dataDir}/**"], "public_functions": ["run"]} */
export function run() {
  const giveUp = Date.now() + 50000
  while (!fs.exists("${dataDir}/release")) {
    if (Date.now() > giveUp) throw new Error("never released")
    const next = Date.now() + 50
    while (Date.now() < next) {}
  }
  return "released"
}
`

const addSkill = `/* @skill {"name": "add", "version": "1.0.0", "description": "Adds two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a + b }
`

const waitPrompt = "Wait for the release file."
const addPrompt = "Add 2 and 3."

/** Two tasks in one cassette: one that waits for the release file, one that adds at once. */
const twoTasks = (dataDir: string): ScriptedTask => ({
  prompt: waitPrompt,
  morePrompts: [addPrompt],
  skills: [{ name: "wait_for_release", code: waitSkill(dataDir) }, { name: "add", code: addSkill }],
  script: [
    FakeReply.content(JSON.stringify({ nodes: [{ id: "wait", action: "skill", skill_name: "wait_for_release", skill_args: {} }] }), {
      when: `Request: ${waitPrompt}`
    }),
    FakeReply.content(JSON.stringify({ nodes: [{ id: "sum", action: "skill", skill_name: "add", skill_args: { a: 2, b: 3 } }] }), {
      when: `Request: ${addPrompt}`
    })
  ]
})

/** A workspace whose waiting task is released while the cassette is recorded, held afterwards. */
const setUp = (store: string) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    mkdirSync(`${dir}/data`)
    writeFileSync(`${dir}/data/release`, "")
    // The waiting skill outlives the default 10 s skill time limit on a busy machine.
    const ws = yield* prepareWorkspace(dir, twoTasks, {
      store,
      adjust: (config) => ({ ...config, limits: { ...config.limits, skill_timeout_seconds: 60 } })
    })
    rmSync(`${ws.dataDir}/release`)
    return ws
  })

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir }, timeoutMs: 60_000 })

interface Listed {
  readonly id: string
  readonly state: string
  readonly prompt: string
}

const tasksOf = (ws: Workspace): ReadonlyArray<Listed> => {
  const run = cli(ws, ["tasks", "--json"])
  if (run.code !== 0) throw new Error(`tasks --json failed: ${run.stderr}`)
  return (JSON.parse(run.stdout) as { tasks: ReadonlyArray<Listed> }).tasks
}

const stores = [
  { name: "file store", skip: false, store: Effect.succeed("file") },
  { name: "Postgres store", skip: postgresMissing !== undefined, store: Effect.flatMap(pg.server, (server) => Effect.orDie(server.createDatabase)) }
]

describe("agent processes sharing one store", () => {
  for (const { name, skip, store } of stores) {
    it.scopedLive.skipIf(skip)(`${name}: a second process cannot resume or reset a task being driven, and a different task runs to completion meanwhile`, () =>
      Effect.gen(function*() {
        const ws = yield* setUp(yield* store)
        const first = startCli(ws, ["run", waitPrompt, "--yes"])
        yield* Effect.addFinalizer(() => Effect.sync(() => first.kill("SIGKILL")))
        const held = yield* waitUntil("the first run drives its task in graph_exec", () => tasksOf(ws).find((t) => t.state === "graph_exec"))
        const holder = `Another luallm-agent process (pid ${first.pid}`

        for (const args of [["resume", "--task", held.id.slice(0, 8)], ["resume"], ["reset", "--task", held.id]]) {
          const refused = cli(ws, args)
          expect(refused.code, args.join(" ")).toBe(1)
          expect(refused.stderr, args.join(" ")).toContain(holder)
          expect(refused.stderr).toContain("`run`")
          expect(refused.stderr).toContain("Wait for it to finish or stop it")
        }

        // Another task is not held up: it runs in its own process while the first still works.
        const other = cli(ws, ["run", addPrompt, "--yes", "--json"])
        expect(other.code).toBe(0)
        expect(JSON.parse(other.stdout)).toMatchObject({ state: "complete", result: { sum: 5 } })
        expect(other.stderr).toContain(`note: starting a new task; 1 other unfinished task (${held.id.slice(0, 8)} graph_exec)`)
        expect(first.exitCode).toBeNull()
        const during = tasksOf(ws)
        expect(during.map((t) => [t.prompt, t.state]).sort()).toEqual([[addPrompt, "complete"], [waitPrompt, "graph_exec"]])

        // status, with no --task, shows the unfinished task, not the newer finished one.
        expect(JSON.parse(cli(ws, ["status", "--json"]).stdout).task.id).toBe(held.id)

        writeFileSync(`${ws.dataDir}/release`, "")
        expect(yield* exited(first)).toBe(0)
        expect(tasksOf(ws).map((t) => t.state)).toEqual(["complete", "complete"])
        const reset = cli(ws, ["reset", "--task", held.id.slice(0, 8)])
        expect(reset.code).toBe(0)
        expect(reset.stdout).toContain(`discarded task ${held.id.slice(0, 8)}`)
        expect(tasksOf(ws).map((t) => t.prompt)).toEqual([addPrompt])
      }).pipe(Effect.provide(TestPlatform)), 180_000)
  }

  it.scopedLive("file store: a task held by another live process (an embedding app) stops the CLI; a killed driver's lock is taken over", () =>
    Effect.gen(function*() {
      const ws = yield* setUp("file")
      const first = startCli(ws, ["run", waitPrompt, "--yes"])
      yield* Effect.addFinalizer(() => Effect.sync(() => first.kill("SIGKILL")))
      const held = yield* waitUntil("the run drives its task", () => tasksOf(ws).find((t) => t.state === "graph_exec"))
      // Killed mid-task: its lock file stays behind, naming a dead pid.
      first.kill("SIGKILL")
      yield* exited(first)
      expect(existsSync(`${ws.config.state_dir}/tasks/${held.id}.lock`)).toBe(true)

      const audit = yield* Audit
      const app = yield* makeFileStateStore({ dir: ws.config.state_dir, audit })
      const refused = yield* Effect.scoped(Effect.zipRight(app.lock(held.id, "embedding app"), Effect.sync(() => cli(ws, ["resume", "--task", held.id]))))
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(`Another luallm-agent process (pid ${process.pid}, \`embedding app\``)

      writeFileSync(`${ws.dataDir}/release`, "")
      const resumed = cli(ws, ["resume", "--json", "--log-level", "warning"])
      expect(resumed.stderr).toBe("")
      expect(JSON.parse(resumed.stdout)).toMatchObject({ task_id: held.id, state: "complete", result: { wait: "released" } })
      expect(existsSync(`${ws.config.state_dir}/tasks/${held.id}.lock`)).toBe(false)
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)), 120_000)
})
