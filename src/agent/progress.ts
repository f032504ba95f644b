/**
 * What the agent reports while it works, for a terminal (or an embedding app) to show:
 * transitions, nodes starting and finishing, LLM calls with their latency and tokens.
 */
import { Effect } from "effect"
import type { TaskStateName } from "../core/task.ts"

export type Progress =
  | { readonly _tag: "Transition"; readonly from: TaskStateName; readonly to: TaskStateName; readonly reason: string }
  | { readonly _tag: "Node"; readonly id: string; readonly action: string; readonly status: string; readonly error?: string }
  | { readonly _tag: "LlmCall"; readonly purpose: string; readonly model: string; readonly latencyMs: number; readonly tokens: number }

export type ProgressListener = (progress: Progress) => Effect.Effect<void>

export const silent: ProgressListener = () => Effect.void
