/**
 * Terminal presentation: colours only on a TTY (and never with NO_COLOR), check marks,
 * and the rule that anything from outside is sanitised before it is printed.
 */
import { Console, Effect, Logger } from "effect"
import { sanitizeForTerminal } from "../core/terminalText.ts"

/** Colour codes go to `stream` only when it is a terminal and NO_COLOR is not set. */
export const colourOn = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && process.env["NO_COLOR"] === undefined

export const colourEnabled = (): boolean => colourOn(process.stdout)

/** `text` without its colour codes (SGR sequences): what a file, a pipe or NO_COLOR gets. */
export const withoutColour = (text: string): string => text.replace(/\u001b\[[0-9;]*m/g, "")

const paint = (code: number) => (text: string): string => (colourEnabled() ? `\u001b[${code}m${text}\u001b[0m` : text)

export const green = paint(32)
export const red = paint(31)
export const yellow = paint(33)
export const dim = paint(2)
export const bold = paint(1)

export const ok = (text: string): string => `${green("✓")} ${text}`
export const fail = (text: string): string => `${red("✗")} ${text}`
export const warn = (text: string): string => `${yellow("!")} ${text}`
export const skipped = (text: string): string => `${yellow("-")} ${text}`

/** Prints untrusted text (a model's answer, a skill's output) with control characters made harmless. */
export const printUntrusted = (text: string): Effect.Effect<void> => Console.log(sanitizeForTerminal(text))

/** Prints a value as JSON for scripts (`--json`). */
export const printJson = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

export const isInteractive = (): boolean => process.stdin.isTTY === true && process.stdout.isTTY === true

/** "18 passed, 0 failed, 4 skipped, 22 total" (skips only when there are some). */
export const testCounts = (report: { readonly total: number; readonly passed: number; readonly failed: number; readonly skipped?: number | undefined }): string =>
  [`${report.passed} passed`, `${report.failed} failed`, ...((report.skipped ?? 0) > 0 ? [`${report.skipped} skipped`] : []), `${report.total} total`].join(", ")

/**
 * The CLI's console: colour codes are removed from output to a stream that is not a colour
 * terminal. Ours are already conditional; @effect/cli's help and usage errors always have them.
 */
export const plainUnlessColour = (console: Console.Console): Console.Console => {
  const plain = (stream: NodeJS.WriteStream) => (args: ReadonlyArray<unknown>) =>
    colourOn(stream) ? args : args.map((arg) => (typeof arg === "string" ? withoutColour(arg) : arg))
  const toStdout = plain(process.stdout)
  const toStderr = plain(process.stderr)
  return {
    ...console,
    log: (...args) => console.log(...toStdout(args)),
    info: (...args) => console.info(...toStdout(args)),
    error: (...args) => console.error(...toStderr(args)),
    warn: (...args) => console.warn(...toStderr(args))
  }
}

/**
 * Log lines (the agent's progress among them) as plain lines on stderr, one per message, with
 * no timestamp or level decoration and no cursor movement; `--log-level` filters them.
 */
export const stderrLines = Logger.make(({ message }) => {
  const text = (Array.isArray(message) ? message : [message]).map((part) => (typeof part === "string" ? part : String(part))).join(" ")
  process.stderr.write(`${colourOn(process.stderr) ? text : withoutColour(text)}\n`)
})
