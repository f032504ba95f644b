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

/**
 * Polls `ready` until it holds (returns something other than `false` or `undefined`, which it
 * then yields); a generous limit turns a stuck process into a failure, not a hang.
 */
export const waitUntil = <A>(what: string, ready: () => A | false | undefined) =>
  Effect.suspend(() => {
    const value = ready()
    return value === false || value === undefined ? Effect.fail(what) : Effect.succeed(value)
  }).pipe(
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("40 seconds"))),
    Effect.orDieWith((what) => new Error(`timed out waiting until ${what}`))
  )
