/**
 * The persisted task: what each transition saves (see `State`). The agent's state machine
 * (`taskMachine.ts`) moves a task from state to state; every field here is what a resumed
 * process needs to continue exactly where the last one stopped.
 */
import { Schema } from "effect"
import { Graph } from "./graph.ts"
import { TestReport } from "./testHarness.ts"

export const TaskStateName = Schema.Literal(
  "pending",
  "planning",
  /** The plan waits for a human's yes before anything runs (approval_tiers.task_confirmation). */
  "confirmation",
  "graph_exec",
  "skill_draft",
  "skill_test",
  "approval",
  "rework",
  "model_wait",
  "complete",
  "failed",
  /** A human said no to the plan or to a skill's exec grant: the task ended without running it. */
  "declined"
)
export type TaskStateName = typeof TaskStateName.Type

/** A skill the plan needs and the library lacks: what the drafting prompt is told. */
export const MissingSkill = Schema.Struct({
  name: Schema.String,
  /** What it must do, from the plan node's description (or the task prompt). */
  purpose: Schema.String,
  /** The arguments the plan will call it with. */
  example_args: Schema.Unknown
})
export type MissingSkill = typeof MissingSkill.Type

/**
 * The SHA-256 of the code and the tests exactly as a passing test run read them: the keys of
 * the tested copy that `Approvals` keeps, which is what a human reviews and what is promoted.
 */
export const TestedFiles = Schema.Struct({ code_sha256: Schema.String, test_sha256: Schema.String })
export type TestedFiles = typeof TestedFiles.Type

/** The skill being drafted now, across draft → test → rework → approval. */
export const SkillDraft = Schema.Struct({
  skill: MissingSkill,
  /** How many versions of the code have been written (1 after the first draft). */
  attempt: Schema.Number,
  code_path: Schema.NullOr(Schema.String),
  test_path: Schema.NullOr(Schema.String),
  /** What went wrong with the last version, fed back to the model on rework. */
  feedback: Schema.NullOr(Schema.String),
  test_report: Schema.NullOr(TestReport),
  /** Set by a passing test run; a task saved before it existed reads as null and is tested again. */
  tested: Schema.optionalWith(Schema.NullOr(TestedFiles), { exact: true, default: () => null }),
  approval_id: Schema.NullOr(Schema.String)
})
export type SkillDraft = typeof SkillDraft.Type

/**
 * Why a task stopped without finishing, and the exact command that continues it: a drafted
 * skill's approval, a model, the plan's confirmation, or a skill's exec grant.
 */
export const Pause = Schema.Struct({
  reason: Schema.Literal("approval", "model", "confirmation", "exec"),
  message: Schema.String,
  next_command: Schema.String
})
export type Pause = typeof Pause.Type

/** A human's grant of the host `exec` capability to one skill, for one task only. */
export const ExecGrant = Schema.Struct({
  skill: Schema.String,
  /** Who granted it: the terminal, the app's approver, `--allow-exec`, or the `auto` tier. */
  by: Schema.String,
  at: Schema.String
})
export type ExecGrant = typeof ExecGrant.Type

export const Task = Schema.Struct({
  id: Schema.String,
  prompt: Schema.String,
  state: TaskStateName,
  created_at: Schema.String,
  updated_at: Schema.String,
  /** Transitions so far, bounded by `limits.max_task_steps`. */
  steps: Schema.Number,
  /** Plans asked for so far. */
  plan_attempts: Schema.Number,
  /** The last plan's validation errors, fed back on the next attempt. */
  plan_feedback: Schema.NullOr(Schema.String),
  /** The model chosen for the task (planning; drafting may use the policy's code model). */
  model: Schema.NullOr(Schema.String),
  graph: Schema.NullOr(Graph),
  /** Skills still to draft before the graph can run, in order. */
  missing_skills: Schema.Array(MissingSkill),
  draft: Schema.NullOr(SkillDraft),
  /** Where to go back to when the model we waited for is ready. */
  resume_state: Schema.NullOr(TaskStateName),
  /** The model the task waits for in `model_wait`. */
  wait_model: Schema.NullOr(Schema.String),
  paused: Schema.NullOr(Pause),
  /** The sink nodes' results, for a complete task. */
  result: Schema.optional(Schema.Unknown),
  /** What went wrong, for a failed task: what happened, what was tried, what to do. */
  error: Schema.NullOr(Schema.String),
  /** Skills a human granted `exec` for this task; absent in tasks saved before grants were asked for. */
  exec_grants: Schema.optionalWith(Schema.Array(ExecGrant), { default: () => [], exact: true }),
  /** Tokens (prompt + answer) its model calls used, for limits.max_task_tokens; absent in tasks saved before it was counted. */
  tokens_used: Schema.optionalWith(Schema.NonNegative, { default: () => 0, exact: true })
})
export type Task = typeof Task.Type

/** What a list of tasks shows of each: enough to pick one without loading it. */
export const TaskSummary = Schema.Struct({
  id: Schema.String,
  state: TaskStateName,
  prompt: Schema.String,
  created_at: Schema.String,
  updated_at: Schema.String,
  /** The last saved transition's sequence number. */
  seq: Schema.Number
})
export type TaskSummary = typeof TaskSummary.Type

export const isTerminal = (task: Pick<Task, "state">): boolean =>
  task.state === "complete" || task.state === "failed" || task.state === "declined"

export const newTask = (id: string, prompt: string, now: string): Task => ({
  id,
  prompt,
  state: "pending",
  created_at: now,
  updated_at: now,
  steps: 0,
  plan_attempts: 0,
  plan_feedback: null,
  model: null,
  graph: null,
  missing_skills: [],
  draft: null,
  resume_state: null,
  wait_model: null,
  paused: null,
  error: null,
  exec_grants: [],
  tokens_used: 0
})

/** The command that continues this task and no other (the shell's; an app calls `Agent.resume({ task: id })`). */
export const resumeCommand = (task: Pick<Task, "id">): string => `luallm-agent resume --task ${task.id.slice(0, 8)}`
