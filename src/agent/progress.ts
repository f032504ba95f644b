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

/** What an app may pass as `onProgress`: a listener returning an Effect, or a plain callback. */
export type ProgressCallback = (progress: Progress) => Effect.Effect<void> | void

export const silent: ProgressListener = () => Effect.void

/**
 * A listener from either kind of callback. A callback that throws is the app's bug, not the
 * task's: it is logged as a warning and the task goes on.
 */
export const toListener = (callback: ProgressCallback | undefined): ProgressListener =>
  callback === undefined
    ? silent
    : (progress) =>
      Effect.suspend(() => {
        const returned = callback(progress)
        return Effect.isEffect(returned) ? returned : Effect.void
      }).pipe(
        Effect.catchAllDefect((defect) => Effect.logWarning("an onProgress callback threw; the task goes on", defect))
      )

/** Both listeners, one after the other. */
export const both = (first: ProgressListener, second: ProgressListener): ProgressListener => (progress) =>
  Effect.zipRight(first(progress), second(progress))
