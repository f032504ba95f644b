/**
 * A state directory that cannot be written: the CLI says so clearly, and the task saved before
 * the fault still loads. Running as root, permissions would not stop a write, so the faults are
 * real ones: an audit log path that is a directory (open fails), a 64 KB tmpfs filled to the last
 * page (ENOSPC), and that tmpfs remounted read-only (EROFS). The tmpfs tests need `mount`; where
 * it is not permitted they are skipped, and the reason is printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { spawnSync } from "node:child_process"
import { appendFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statfsSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { prepareWorkspace, type ScriptedTask, type Workspace } from "../../scripts/soak.ts"
import { newTask } from "../../src/core/task.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { Audit, AuditTest, makeFileAudit, readAuditLog } from "../../src/layers/Audit.ts"
import { makeFileStateStore } from "../../src/layers/store/fileState.ts"
import { runCli } from "../support/cli.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const addTask = (): ScriptedTask => ({
  prompt: "Add 2 and 3.",
  skills: [{
    name: "add",
    code: `/* @skill {"name": "add", "version": "1.0.0", "description": "Adds two numbers", "public_functions": ["run"], "args": {"a": "number", "b": "number"}} */
export function run({ a, b }) { return a + b }
`
  }],
  script: [
    FakeReply.content(JSON.stringify({ nodes: [{ id: "sum", action: "skill", skill_name: "add", skill_args: { a: 2, b: 3 } }] }), { when: "Request:" })
  ]
})

const cli = (ws: Workspace, args: ReadonlyArray<string>) => runCli([...ws.globalArgs, ...args], { env: { HOME: ws.dir } })

const savedTask = (ws: Workspace, id?: string): { readonly id: string; readonly state: string } =>
  JSON.parse(cli(ws, ["status", "--json", ...(id === undefined ? [] : ["--task", id])]).stdout).task

const store = (dir: string) => Effect.flatMap(Audit, (audit) => makeFileStateStore({ dir, audit }))

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN); the reason when not. */
const tmpfsProbe = (): string | undefined => {
  const dir = mkdtempSync(join(tmpdir(), "luallm-agent-mount-probe-"))
  const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir], { encoding: "utf8" })
  if (mount.status === 0) spawnSync("umount", [dir])
  rmdirSync(dir)
  return mount.status === 0 ? undefined : `mount -t tmpfs is not permitted here (${(mount.stderr || mount.error?.message || "no reason given").trim()})`
}
const cannotMount = tmpfsProbe()
if (cannotMount !== undefined) console.log(`skipping the ENOSPC and read-only tests: ${cannotMount}`)

const run = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr}`)
}

/** A 64 KB tmpfs mounted on `dir` for the scope. */
const tinyTmpfs = (dir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      mkdirSync(dir, { recursive: true })
      run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])
    }),
    () => Effect.sync(() => spawnSync("umount", [dir]))
  )

/** Fills the file system of `dir` until only `pagesLeft` pages are free. */
const fill = (dir: string, pagesLeft: number) => {
  const filler = join(dir, "filler")
  const { bavail, bsize } = statfsSync(dir)
  writeFileSync(filler, Buffer.alloc(Math.max(0, (bavail - pagesLeft) * bsize)))
  // What statfs rounds away: keep appending a page until the disk says no.
  if (pagesLeft === 0) {
    try {
      for (;;) appendFileSync(filler, Buffer.alloc(bsize))
    } catch {
      // ENOSPC: full.
    }
  }
  return filler
}

describe("a state directory that cannot be written", () => {
  it.scopedLive("an audit log that cannot be opened: run fails naming it, saves nothing, and the previous task still loads", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, addTask)
      expect(cli(ws, ["run", ws.prompt, "--yes"]).code).toBe(0)
      const before = savedTask(ws)
      rmSync(ws.config.audit.path)
      mkdirSync(ws.config.audit.path)

      const failed = cli(ws, ["run", ws.prompt, "--yes"])
      expect(failed.code).toBe(1)
      expect(failed.stderr).toContain(`error: Could not write the audit log ${ws.config.audit.path}`)
      expect(failed.stderr).toContain("Check that the disk has space and the directory is writable")
      expect(failed.stderr).not.toMatch(/\n\s+at /) // no stack trace
      // The transition's line goes first: the task it would have started was not saved.
      expect(JSON.parse(cli(ws, ["tasks", "--json"]).stdout).tasks.map((t: { id: string }) => t.id)).toEqual([before.id])
      expect(savedTask(ws)).toEqual(before)
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive.skipIf(cannotMount !== undefined)("a full disk (ENOSPC on a 64 KB tmpfs): the next transition fails with StateIoError and the previous one loads", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "state")
      yield* tinyTmpfs(dir)
      const state = yield* store(dir)
      const previous = newTask("previous", "small", "2026-01-01T00:00:00.000Z")
      yield* state.save(previous)
      const filler = fill(dir, 0)

      const error = yield* Effect.flip(state.save({ ...previous, prompt: "x".repeat(8192), steps: 1 }))
      expect(error._tag).toBe("StateIoError")
      expect(error.message).toContain(`Could not write ${dir}/tasks/previous.jsonl`)
      expect(error.message).toMatch(/no space left on device/i)
      expect(error.message).toContain("the disk has space; the previously saved task is left as it was")
      expect(yield* state.load("previous")).toEqual(Option.some(previous))
      // A new task cannot start either, and leaves nothing behind.
      expect((yield* Effect.flip(state.save(newTask("next", "x".repeat(8192), "2026-01-01T00:00:00.000Z"))))._tag).toBe("StateIoError")
      expect((yield* state.list).tasks.map((t) => t.id)).toEqual(["previous"])

      rmSync(filler)
      yield* state.save({ ...previous, steps: 2 })
      expect(Option.map(yield* state.load("previous"), (task) => task.steps)).toEqual(Option.some(2))
      // A new store (a new process) reads the journal whole.
      expect(Option.map(yield* (yield* store(dir)).load("previous"), (task) => task.steps)).toEqual(Option.some(2))
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))

  it.scopedLive.skipIf(cannotMount !== undefined)("a full disk mid audit line: the write fails with AuditWriteError and leaves no torn line behind", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "audit")
      yield* tinyTmpfs(dir)
      const path = `${dir}/audit.jsonl`
      const audit = yield* makeFileAudit({ path, maxSizeBytes: 1024 * 1024, maxFiles: 1 })
      yield* audit.log("before")
      yield* audit.flush
      const filler = fill(dir, 0)
      // A line bigger than what is left on the last page: part of it would be written.
      yield* audit.log("too.big", { pad: "x".repeat(16 * 1024) })
      const error = yield* Effect.flip(audit.flush)
      expect(error._tag).toBe("AuditWriteError")
      expect(error.message).toMatch(/no space left on device/i)
      rmSync(filler)
      yield* audit.log("after")
      yield* audit.flush
      const read = yield* readAuditLog({ path, maxFiles: 1 })
      expect(read.bad).toEqual([])
      expect(read.entries.map((entry) => entry.event)).toEqual(["before", "after"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive.skipIf(cannotMount !== undefined)("a full disk through the CLI: run fails with the ENOSPC message, the previous task still loads, and it works again once there is space", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, addTask)
      yield* tinyTmpfs(ws.config.state_dir)
      expect(cli(ws, ["run", ws.prompt, "--yes"]).code).toBe(0)
      const before = savedTask(ws)
      const filler = fill(ws.config.state_dir, 0)

      const failed = cli(ws, ["run", ws.prompt, "--yes"])
      expect(failed.code).toBe(1)
      expect(failed.stderr).toMatch(/^error: Could not write .*: .*no space left on device/im)
      expect(failed.stderr).not.toMatch(/\n\s+at /)
      expect(savedTask(ws, before.id)).toEqual(before)

      rmSync(filler)
      const again = cli(ws, ["run", ws.prompt, "--yes", "--json", "--log-level", "warning"])
      expect(again.stderr).toBe("")
      expect(JSON.parse(again.stdout)).toMatchObject({ state: "complete", result: { sum: 5 } })
    }).pipe(Effect.provide(TestPlatform)))

  it.scopedLive.skipIf(cannotMount !== undefined)("a read-only state dir (EROFS): run and reset fail clearly, status still shows the previous task", () =>
    Effect.gen(function*() {
      const ws = yield* prepareWorkspace(yield* tempDir, addTask)
      yield* tinyTmpfs(ws.config.state_dir)
      expect(cli(ws, ["run", ws.prompt, "--yes"]).code).toBe(0)
      const before = savedTask(ws)
      run("mount", ["-o", "remount,ro", ws.config.state_dir])

      for (const args of [["run", ws.prompt, "--yes"], ["reset"]]) {
        const failed = cli(ws, args)
        expect(failed.code).toBe(1)
        // `run` writes the task's first audit line first (the log is in state_dir here); `reset` takes the task's lock first.
        expect(failed.stderr).toMatch(/^error: Could not (lock|write) .*: .*read-only file system/im)
        expect(failed.stderr).toMatch(/Check that (state_dir|the disk has space and the directory) is writable/)
      }
      expect(savedTask(ws)).toEqual(before)

      const state = yield* store(ws.config.state_dir)
      const error = yield* Effect.flip(state.save(newTask("next", "x", "2026-01-01T00:00:00.000Z")))
      expect(error._tag).toBe("StateIoError")
      expect(error.message).toMatch(/read-only file system/i)
      expect(Option.map(yield* state.load(before.id), (task) => task.id)).toEqual(Option.some(before.id))
    }).pipe(Effect.provide(AuditTest), Effect.provide(TestPlatform)))
})
