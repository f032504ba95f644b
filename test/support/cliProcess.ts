/** The bundled CLI as a running process in a scripted workspace (scripts/soak.ts), for tests that act on it while it works. */
import { Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { cliBin, type Workspace } from "../../scripts/soak.ts"

export const startCli = (ws: Workspace, args: ReadonlyArray<string>): ChildProcess =>
  spawn(process.execPath, [cliBin, ...ws.globalArgs, ...args], { env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: ws.dir, NO_COLOR: "1" }, stdio: "ignore" })

/** The process's exit code, once it has exited. */
export const exited = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

/** Polls `ready` until it holds; a generous limit turns a stuck process into a failure, not a hang. */
export const waitUntil = (what: string, ready: () => boolean) =>
  Effect.suspend(() => (ready() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("20 seconds"))),
    Effect.orDieWith((what) => new Error(`timed out waiting until ${what}`))
  )
