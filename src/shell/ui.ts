/**
 * Terminal presentation: colours only on a TTY (and never with NO_COLOR), check marks,
 * and the rule that anything from outside is sanitised before it is printed.
 */
import { Console, Effect } from "effect"
import { sanitizeForTerminal } from "../core/terminalText.ts"

export const colourEnabled = (): boolean => process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined

const paint = (code: number) => (text: string): string => (colourEnabled() ? `\u001b[${code}m${text}\u001b[0m` : text)

export const green = paint(32)
export const red = paint(31)
export const yellow = paint(33)
export const dim = paint(2)
export const bold = paint(1)

export const ok = (text: string): string => `${green("✓")} ${text}`
export const fail = (text: string): string => `${red("✗")} ${text}`
export const warn = (text: string): string => `${yellow("!")} ${text}`

/** Prints untrusted text (a model's answer, a skill's output) with control characters made harmless. */
export const printUntrusted = (text: string): Effect.Effect<void> => Console.log(sanitizeForTerminal(text))

/** Prints a value as JSON for scripts (`--json`). */
export const printJson = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

export const isInteractive = (): boolean => process.stdin.isTTY === true && process.stdout.isTTY === true
