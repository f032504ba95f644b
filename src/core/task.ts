/**
 * The persisted task: what `current_task.json` holds. The agent's state machine
 * (`taskMachine.ts`) moves a task from state to state; every field here is what a resumed
 * process needs to continue exactly where the last one stopped.
 */
import { Schema } from "effect"

export const TaskStateName = Schema.Literal(
  "pending",
  "planning",
  "graph_exec",
  "skill_draft",
  "skill_test",
  "approval",
  "rework",
  "model_wait",
  "complete",
  "failed"
)
export type TaskStateName = typeof TaskStateName.Type

export const Task = Schema.Struct({
  id: Schema.String,
  prompt: Schema.String,
  state: TaskStateName,
  created_at: Schema.String,
  updated_at: Schema.String,
  steps: Schema.Number
})
export type Task = typeof Task.Type
