/**
 * The one place where an expected failure becomes what the user sees: one message on stderr
 * and an exit code that means something. Tagged errors carry their own `message` (what
 * happened, what was tried, what to do next); this module only decides the presentation and
 * the code. Defects (bugs) are left to crash with their trace.
 */
import { Data } from "effect"
import { sanitizeForTerminal } from "../core/terminalText.ts"

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

export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes]

/**
 * Ends a command with `code`. Without `error`, the command has already printed what the user
 * needs (a failed task, doctor's ✗ lines); with one, its message is printed like any other.
 */
export class ExitWith extends Data.TaggedError("ExitWith")<{
  readonly code: ExitCode
  readonly error?: { readonly message: string }
}> {
  override get message() {
    return this.error?.message ?? `exit ${this.code}`
  }
}

export interface RenderedError {
  /** What goes to stderr; empty when the command already said it. */
  readonly message: string
  readonly code: ExitCode
}

const hasMessage = (error: unknown): error is { readonly message: string } =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"

const line = (text: string): string => `error: ${sanitizeForTerminal(text)}`

export const renderError = (error: unknown): RenderedError => {
  if (error instanceof ExitWith) return { message: error.error === undefined ? "" : line(error.error.message), code: error.code }
  return { message: line(hasMessage(error) ? error.message : String(error)), code: ExitCodes.failure }
}
