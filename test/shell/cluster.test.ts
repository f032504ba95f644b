/**
 * The CLI on the task cluster, as a user meets it: a `worker` on a Postgres store (the bundled
 * CLI, replaying a recorded model), then `run`, `status`, `approvals approve` and `resume` from
 * other processes, which go to the cluster because a worker is registered, with the outcome,
 * output and exit codes of one process; `--on local` keeps a command in its own process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { startWorkers } from "../../scripts/clusterSoak.ts"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { runCli } from "../support/cli.ts"
import { postgresForSuite, postgresMissing } from "../support/postgresSuite.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const pg = postgresForSuite({ fsync: false })

const multiplySkill = `/* @skill {"name": "multiply", "version": "1.0.0", "description": "Multiplies two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a * b }
`
const tripleSkill = `/* @skill {"name": "triple", "version": "1.0.0", "description": "Triples a number", "public_functions": ["run"], "args": {"n": "number"}} */
export function run({ n }) { return n * 3 }
`
const tripleTests = `const { run } = require("triple")
test("triples 2", () => { assert.equal(run({ n: 2 }), 6) })
`
const plan = (nodes: ReadonlyArray<Record<string, unknown>>) => JSON.stringify({ nodes })

/** Four requests: three with a trusted skill (on the cluster, quietly there, locally), one that drafts a skill. */
const tasks = (): ScriptedTask => ({
  prompt: "Multiply 6 by 7.",
  morePrompts: ["Multiply 6 by 7 quietly.", "Multiply 6 by 7 here.", "Triple 14."],
  skills: [{ name: "multiply", code: multiplySkill }],
  script: [
    FakeReply.content(plan([{ id: "product", action: "skill", skill_name: "multiply", skill_args: { a: 6, b: 7 } }]), { when: "Request: Multiply 6 by 7." }),
    FakeReply.content(plan([{ id: "product", action: "skill", skill_name: "multiply", skill_args: { a: 6, b: 7 } }]), { when: "Request: Multiply 6 by 7 here." }),
    FakeReply.content(plan([{ id: "product", action: "skill", skill_name: "multiply", skill_args: { a: 6, b: 7 } }]), { when: "Request: Multiply 6 by 7 quietly." }),
    FakeReply.content(plan([{ id: "t", action: "skill", skill_name: "triple", skill_args: { n: 14 }, description: "Return three times n." }]), {
      when: "Request: Triple 14."
    }),
    FakeReply.content(tripleSkill, { when: "Write the skill file" }),
    FakeReply.content(tripleTests, { when: "Write triple.test.js" })
  ]
})

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir }, cwd: ws.dir, timeoutMs: 90_000 })

const json = (text: string): unknown => JSON.parse(text)

describe.skipIf(postgresMissing !== undefined)("the CLI on the task cluster", () => {
  it.scopedLive("run, status, approvals approve and resume go to the worker when one is registered; --on local stays in this process", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const url = yield* Effect.flatMap(pg.server, (server) => Effect.orDie(server.createDatabase))
      const ws = yield* prepareWorkspace(dir, tasks, {
        store: url,
        adjust: (config) => ({ ...config, cluster: { ...config.cluster, lease_seconds: 6, health_check_seconds: 2 } })
      })
      const [worker] = yield* startWorkers(ws, 1)
      const address = worker?.address ?? "?"

      const product = cli(ws, ["run", "Multiply 6 by 7.", "--json"])
      expect(product.code).toBe(0)
      expect(json(product.stdout)).toMatchObject({ state: "complete", result: { product: 42 } })
      // Its progress, followed from the store's audit log, as plain lines on stderr like a local run's.
      const lines = product.stderr.trim().split("\n")
      expect(lines[0]).toMatch(new RegExp(`^task [0-9a-f]{8} goes to the task cluster \\(1 worker: ${address}\\)$`))
      expect(lines).toContain(`runner ${address} drives it (Start)`)
      expect(lines).toContain("  node product [skill] complete")
      expect(lines.at(-2)).toMatch(/^complete ← graph_exec/)
      expect(lines.at(-1)).toBe(`driven by runner ${address}`)
      expect(product.stderr).not.toMatch(/[\u001b\r]|INFO|level=|fiber=/)
      const quiet = cli(ws, ["--log-level", "warning", "run", "Multiply 6 by 7 quietly.", "--json"])
      expect(quiet.code).toBe(0)
      expect(quiet.stderr).toMatch(new RegExp(`^task [0-9a-f]{8} goes to the task cluster \\(1 worker: ${address}\\)\\ndriven by runner ${address}\\n$`))

      // --on local: this process drives the task, though a worker runs (before triple is promoted: the
      // recorded planning prompts list the skills of their time).
      const here = cli(ws, ["--on", "local", "run", "Multiply 6 by 7 here.", "--json"])
      expect(here.stderr).not.toContain("cluster")
      expect(here.stderr).not.toContain("runner")
      expect(here.stderr.trim().split("\n").at(-1)).toMatch(/^complete ← graph_exec/)
      expect(here.code).toBe(0)
      expect(json(here.stdout)).toMatchObject({ state: "complete", result: { product: 42 } })
      const hereLog = cli(ws, ["log", "--task", (json(here.stdout) as { task_id: string }).task_id.slice(0, 8)])
      expect(hereLog.stdout).not.toContain("cluster.drive")

      // A draft pauses the task for a human, as in one process: exit code 3.
      const triple = cli(ws, ["run", "Triple 14.", "--json"])
      expect(triple.code).toBe(3)
      const paused = json(triple.stdout) as { task_id: string; state: string; paused: { reason: string } }
      expect(paused).toMatchObject({ state: "approval", paused: { reason: "approval" } })
      const id = paused.task_id

      const status = cli(ws, ["status", "--json"])
      expect(status.code).toBe(0)
      expect(json(status.stdout)).toMatchObject({ task: { id, state: "approval" }, cluster: { runner: address, driving: false, problem: null } })
      const statusText = cli(ws, ["status", "--task", id.slice(0, 8)])
      expect(statusText.stdout).toContain(`runner: ${address} holds it (not driving it now)`)

      // The approval record and the tested copy are in state_dir, shared here by the worker and this CLI.
      const pending = json(cli(ws, ["approvals", "list", "--json"]).stdout) as ReadonlyArray<{ id: string; task_id: string }>
      expect(pending.map((record) => record.task_id)).toEqual([id])
      const approvalId = pending[0]?.id ?? ""
      const approved = cli(ws, ["approvals", "approve", approvalId.slice(0, 8)])
      expect(approved.code).toBe(0)
      expect(approved.stdout).toBe(
        `approved and promoted triple → ${ws.config.skills.allowed_dir}/triple.js (on runner ${address})\n` +
          `its task ${id.slice(0, 8)} goes on on the cluster; follow it with \`luallm-agent resume --task ${id.slice(0, 8)}\`\n`
      )
      expect(readFileSync(`${ws.config.skills.allowed_dir}/triple.js`, "utf8")).toBe(tripleSkill)

      // The runner continues the task by itself; resume follows it to its end (or finds it there).
      const resumed = cli(ws, ["resume", "--task", id.slice(0, 8), "--json"])
      expect(resumed.code).toBe(0)
      expect(json(resumed.stdout)).toMatchObject({ task_id: id, state: "complete", result: { t: 42 } })
      expect(resumed.stderr).toContain("complete ← graph_exec")
      expect(resumed.stderr.trim().split("\n").at(-1)).toBe(`driven by runner ${address}`)

      // The same decision again (as after a runner that did not answer) is told again, not made again;
      // the other decision is refused, as in one process.
      const again = cli(ws, ["approvals", "approve", approvalId.slice(0, 8)])
      expect(again.code).toBe(0)
      expect(again.stdout).toBe(approved.stdout)
      const reversed = cli(ws, ["approvals", "reject", approvalId.slice(0, 8), "--reason", "changed my mind"])
      expect(reversed.code).toBe(1)
      expect(reversed.stderr).toBe(`error: Approval ${approvalId} was already approved; a decision is final. Run the task again to draft a new version.\n`)

      const log = cli(ws, ["log", "--task", id.slice(0, 8)])
      expect(log.stdout).toContain(`cluster.drive {"runner":"${address}","message":"Start"}`)
      expect(log.stdout.match(/approval\.resolve/g)).toHaveLength(1)
      expect(log.stdout.match(/approval\.promote/g)).toHaveLength(1)

    }).pipe(Effect.provide(TestPlatform)), 240_000)
})

describe("the task cluster needs a Postgres store", () => {
  it.scoped("worker, and --on cluster, on the file store are one clear error", () =>
    Effect.gen(function*() {
      const home = yield* tempDir
      const env = { HOME: home }
      const worker = runCli(["worker"], { env, cwd: home })
      expect(worker.code).toBe(1)
      expect(worker.stderr).toBe(
        "error: `worker` needs a Postgres store: the task cluster keeps its tasks and messages in the database its runners share, and `store` is \"file\". Pass --store postgres://user:password@host:5432/db, or set store in the config.\n"
      )
      const run = runCli(["--on", "cluster", "run", "anything", "--yes"], { env, cwd: home })
      expect(run.code).toBe(1)
      expect(run.stderr).toContain("error: `run` needs a Postgres store")
      const port = runCli(["worker", "--port", "70000"], { env, cwd: home })
      expect(port.code).toBe(1)
      expect(port.stderr).toContain("cluster.port: expected a port number from 0 to 65535, got 70000 (from --port)")
    }).pipe(Effect.provide(TestPlatform)), 60_000)
})
