/**
 * Exit codes that mean something, and the one place where an expected failure becomes a
 * message on stderr. Defects (bugs) are left to crash with their trace.
 */
import { Data } from "effect"

export const ExitCodes = {
  ok: 0,
  /** A check or a task failed, or an expected error was reported. */
  failure: 1,
  /** The command line was wrong (unknown option, bad argument). */
  usage: 2,
  /** The task paused: it waits for an approval or a model; `resume` continues it. */
  paused: 3,
  /** Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it); a task is saved and `resume` continues it. */
  interrupted: 130
} as const

/** Fails a command with a given exit code after it has already printed what the user needs. */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {
  override get message() {
    return `exit ${this.code}`
  }
}
