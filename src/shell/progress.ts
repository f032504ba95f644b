/**
 * Shows the agent's progress on a terminal: state changes, nodes, LLM calls with latency and
 * tokens. Written to stderr (stdout stays for results and `--json`), and only when stderr is a
 * terminal, so scripts and logs get the result alone.
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

export const terminalProgress = (): ProgressListener =>
  process.stderr.isTTY === true
    ? (progress) => Effect.sync(() => process.stderr.write(`${describeProgress(progress)}\n`))
    : () => Effect.void
