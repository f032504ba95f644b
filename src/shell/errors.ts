/**
 * Turns every expected failure into one clear message and an exit code. Tagged errors carry
 * their own `message` (what happened, what was tried, what to do next); this module only
 * decides presentation and the code.
 */
import { sanitizeForTerminal } from "../core/terminalText.ts"
import { ExitCodes } from "./exit.ts"

export interface RenderedError {
  readonly message: string
  readonly code: number
}

const hasTag = (error: unknown): error is { readonly _tag: string; readonly message: string } =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" &&
  "message" in error && typeof error.message === "string"

export const renderError = (error: unknown): RenderedError => {
  if (hasTag(error) && error._tag === "ExitWith" && "code" in error && typeof error.code === "number") {
    return { message: "", code: error.code }
  }
  if (hasTag(error)) return { message: `error: ${sanitizeForTerminal(error.message)}`, code: ExitCodes.failure }
  return { message: `error: ${sanitizeForTerminal(String(error))}`, code: ExitCodes.failure }
}
