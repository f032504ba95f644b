/**
 * The task entity's protocol: each task is an `@effect/cluster` entity keyed by its id, and
 * these are the messages it takes. Everything here crosses a process boundary, so every
 * payload, answer and error is a Schema.
 *
 * `Start`, `Resume`, `Approve` and `Reject` are persisted: the message is in the store before
 * a runner sees it, and it counts as handled only once its answer is stored. A runner that dies
 * while it drives a task leaves the message unanswered, so the runner that takes over the task's
 * shard receives it again and continues the task from its last saved transition. They are
 * uninterruptible from the client's side: a client that stops following (Ctrl-C) leaves the
 * task running on the cluster. `Status` is not persisted: it asks whoever holds the task now.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { PrimaryKey, Schema } from "effect"
import { Task } from "../../core/task.ts"
import { ApprovalRecord } from "../Approvals.ts"

/** A task where a drive left it (finished, or paused), and the runner that drove it. */
export const TaskReport = Schema.Struct({ task: Task, runner: Schema.String })
export type TaskReport = typeof TaskReport.Type

/** A decided approval as the runner recorded it. */
export const ApprovalReport = Schema.Struct({ approval: ApprovalRecord, runner: Schema.String })
export type ApprovalReport = typeof ApprovalReport.Type

/** Who holds a task now: the runner, whether a drive of it is running there, and the task as saved. */
export const TaskStatus = Schema.Struct({ runner: Schema.String, driving: Schema.Boolean, task: Schema.NullOr(Task) })
export type TaskStatus = typeof TaskStatus.Type

/** What stopped a runner from handling a message: the original error's tag and message. */
export class RemoteTaskError extends Schema.TaggedError<RemoteTaskError>()("RemoteTaskError", {
  task_id: Schema.String,
  runner: Schema.String,
  /** The tag of the error the runner met (`StateCorrupt`, `LlmUnreachable`, …). */
  error: Schema.String,
  /** Its message: what happened and what to do. */
  detail: Schema.String
}) {
  override get message() {
    return `Runner ${this.runner} could not go on with task ${this.task_id.slice(0, 8)}: ${this.detail}`
  }
}

/**
 * Whether the plan is confirmed ahead of time, as `--yes` does: only under the `prompt` tier
 * (whoever may send a task may send it confirmed). A message never approves a draft or grants
 * exec: those need a record, or a process of the human's own (`--on local`).
 */
const confirmPlan = Schema.optionalWith(Schema.Boolean, { exact: true, default: () => false })

/** The first message of a task: at most one per task id (a second is answered like the first). */
export class StartTask extends Schema.Class<StartTask>("StartTask")({ prompt: Schema.String, confirm_plan: confirmPlan }) {
  [PrimaryKey.symbol]() {
    return "start"
  }
}

/** A request to go on with a saved task (each a message of its own). */
export class ResumeTask extends Schema.Class<ResumeTask>("ResumeTask")({ confirm_plan: confirmPlan }) {}

/**
 * That a human decided one of the task's approvals (recorded with `approvals approve|reject`
 * where the approval records are): at most one message per approval. The message carries no
 * decision of its own: the runner acts only on what the record says.
 */
export class ApprovalDecided extends Schema.Class<ApprovalDecided>("ApprovalDecided")({
  /** The approval's full id. */
  approval: Schema.String
}) {
  [PrimaryKey.symbol]() {
    return this.approval
  }
}

/** The messages that drive a task: persisted, and deaf to a client that stops waiting. */
const driving = RpcGroup.make(
  /** Creates the task with the entity's id and drives it until it finishes or pauses. */
  Rpc.make("Start", { payload: StartTask, success: TaskReport, error: RemoteTaskError }),
  /** Drives the saved task until it finishes or pauses (joins the drive already running, if any). */
  Rpc.make("Resume", { payload: ResumeTask, success: TaskReport, error: RemoteTaskError }),
  /** The draft was approved: the runner promotes it, then the task goes on (a `Resume` the entity sends itself). */
  Rpc.make("Approve", { payload: ApprovalDecided, success: ApprovalReport, error: RemoteTaskError }),
  /** The draft was rejected: the task goes on, to fail with the reason (a `Resume`, likewise). */
  Rpc.make("Reject", { payload: ApprovalDecided, success: ApprovalReport, error: RemoteTaskError })
).annotateRpcs(ClusterSchema.Persisted, true).annotateRpcs(ClusterSchema.Uninterruptible, "client")

export const TaskEntity = Entity.fromRpcGroup(
  "LuallmTask",
  driving.add(Rpc.make("Status", { success: TaskStatus, error: RemoteTaskError }))
)
