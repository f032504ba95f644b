/**
 * Shows the agent's progress: state changes, nodes, LLM calls with latency and tokens, as plain
 * lines on stderr (stdout stays for results and `--json`), terminal or not; colour only on a
 * colour terminal.
 */
import { Effect } from "effect"
import type { Progress, ProgressListener } from "../agent/progress.ts"
import { sanitizeForTerminal } from "../core/terminalText.ts"
import { bold, dim, green, red, yellow } from "./ui.ts"

export const describeProgress = (progress: Progress): string => {
  switch (progress._tag) {
    case "Transition":
      return `${bold(progress.to)} ${dim(`← ${progress.from}: ${sanitizeForTerminal(progress.reason)}`)}`
    case "Node": {
      const status = progress.status === "complete"
        ? green(progress.status)
        : progress.status === "failed"
        ? red(progress.status)
        : progress.status === "skipped"
        ? yellow(progress.status)
        : progress.status
      const error = progress.error === undefined ? "" : dim(` (${sanitizeForTerminal(progress.error).slice(0, 160)})`)
      return `  node ${sanitizeForTerminal(progress.id)} [${progress.action}] ${status}${error}`
    }
    case "LlmCall":
      return dim(
        `  llm ${progress.purpose}: ${sanitizeForTerminal(progress.model)} ${(progress.latencyMs / 1000).toFixed(1)}s, ${progress.tokens} tokens`
      )
  }
}

/**
 * The CLI's progress: one plain line per step on stderr, through the log (info level), so
 * `--log-level warning` silences it and a script's stdout keeps the result alone.
 */
export const terminalProgress = (): ProgressListener => (progress) => Effect.logInfo(describeProgress(progress))
