/**
 * What a runner does with a task's messages: it drives the task with the runner's `Agent`, step
 * by step, each transition saved in the store as in one process. One drive per task at a time:
 * a `Start` or `Resume` that arrives while the task is being driven here waits for that drive's
 * outcome instead of starting another. Across runners, the shard (one runner holds it) and the
 * store's lock per task keep a second driver off; a runner that finds the task locked by
 * another process (an app, a `resume` on some machine) waits for it.
 *
 * A crash is survived by the message, not by the runner: a driving message is answered only when
 * its drive ends, so when its runner dies it is still unanswered in the store and the runner
 * that takes over the shard gets it again. `Start` of a task that is already saved resumes it
 * from its last saved transition, like `Resume`; a node that ran and was not yet saved as
 * complete runs again (at least once, as after a crash of one process).
 */
import * as Entity from "@effect/cluster/Entity"
import { Data, Duration, Effect, type Fiber, Option, Schedule, Scope, SynchronizedRef } from "effect"
import { Agent, type AgentError, type AgentOutcome, type TaskHandle } from "../../Agent.ts"
import type { ProgressListener } from "../../agent/progress.ts"
import { Approvals } from "../Approvals.ts"
import { Audit, inTask } from "../Audit.ts"
import { AppConfig } from "../Config.ts"
import { State } from "../State.ts"
import type { StandingAnswers } from "../Approver.ts"
import { type ApprovalDecided, RemoteTaskError, ResumeTask, TaskEntity } from "./protocol.ts"

export class ApprovalOfAnotherTask extends Data.TaggedError("ApprovalOfAnotherTask")<{
  readonly approval: string
  readonly owner: string | null
  readonly task: string
}> {
  override get message() {
    const owner = this.owner === null ? "no task" : `task ${this.owner.slice(0, 8)}`
    return `Approval ${this.approval.slice(0, 8)} belongs to ${owner}, not to task ${this.task.slice(0, 8)}; a decision goes to the task that asked for it. \`luallm-agent approvals list\` shows each approval's task.`
  }
}

export class ApprovalNotDecided extends Data.TaggedError("ApprovalNotDecided")<{
  readonly approval: string
  readonly task: string
  readonly status: string
  readonly wanted: string
}> {
  override get message() {
    const short = this.approval.slice(0, 8)
    return this.status === "pending"
      ? `Approval ${short} is still pending; the runner goes on only after a human decides it. Decide it with \`luallm-agent approvals approve ${short}\` or \`luallm-agent approvals reject ${short}\` where its record is (state_dir).`
      : `Approval ${short} was ${this.status}, not ${this.wanted}; a decision is final. \`luallm-agent resume --task ${this.task.slice(0, 8)}\` continues its task as decided.`
  }
}

/** Waits for the task's outcome; stopping the wait stops the task (its last transition stays saved). */
const awaitHandle = (handle: TaskHandle) => Effect.onInterrupt(handle.await, () => handle.interrupt)

/**
 * The task entity's handlers on this runner. `progress(id)` receives each task's progress
 * (the worker prints its transitions).
 */
export const taskEntityLayer = (progress: (taskId: string) => ProgressListener) =>
  TaskEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const here = yield* Entity.CurrentRunnerAddress
      const scope = yield* Scope.Scope
      const agent = yield* Agent
      const state = yield* State
      const approvals = yield* Approvals
      const audit = yield* Audit
      const app = yield* AppConfig
      const self = (yield* TaskEntity.client)(address.entityId)
      const id: string = address.entityId
      const runner = `${here.host}:${here.port}`
      const onProgress = progress(id)
      /** The drive running on this runner now, if any. */
      const current = yield* SynchronizedRef.make(Option.none<Fiber.RuntimeFiber<AgentOutcome, AgentError>>())

      const remote = (error: { readonly _tag: string; readonly message: string }) =>
        new RemoteTaskError({ task_id: id, runner, error: error._tag, detail: error.message })

      // Another process may drive the task (an app, a `resume` elsewhere): wait for it, a while.
      const whileLocked = Schedule.spaced("1 second").pipe(Schedule.upTo(Duration.seconds(app.config.cluster.lease_seconds * 4)))

      /** Joins the drive running here, or starts one with `begin` (logged with the message that asked). */
      const drive = (message: string, begin: Effect.Effect<AgentOutcome, AgentError>) =>
        SynchronizedRef.modifyEffect(current, (running) =>
          Option.match(running, {
            onSome: (fiber) => Effect.succeed([fiber, running] as const),
            onNone: () =>
              audit.log("cluster.drive", { runner, message }).pipe(
                inTask(id),
                Effect.zipRight(Effect.retry(begin, { while: (error) => error._tag === "StateLocked", schedule: whileLocked })),
                Effect.ensuring(SynchronizedRef.set(current, Option.none())),
                Effect.forkIn(scope),
                Effect.map((fiber) => [fiber, Option.some(fiber)] as const)
              )
          })).pipe(
            Effect.flatMap((fiber) => fiber.await),
            Effect.flatten,
            Effect.map((outcome) => ({ task: outcome.task, runner })),
            Effect.mapError(remote)
          )

      /** What a message answers ahead of time: the plan's confirmation under the `prompt` tier, nothing else. */
      const answers = (payload: { readonly confirm_plan: boolean }): StandingAnswers =>
        payload.confirm_plan ? { confirmPlan: "--yes, sent with the message" } : {}
      const resume = (payload: { readonly confirm_plan: boolean }) => agent.resume({ task: id, onProgress, answers: answers(payload) })

      /**
       * Continues the task after a human's decision, which must be in the approval's record: a
       * message grants nothing by itself (whoever reaches a runner's port could send one).
       */
      const decided = (payload: ApprovalDecided, approved: boolean) =>
        Effect.gen(function*() {
          const record = yield* approvals.get(payload.approval)
          if (record.task_id !== id) return yield* new ApprovalOfAnotherTask({ approval: record.id, owner: record.task_id, task: id })
          const wanted = approved ? "approved" : "rejected"
          if (record.status !== wanted) return yield* new ApprovalNotDecided({ approval: record.id, task: id, status: record.status, wanted })
          const installed = approved && record.promoted_to === null ? yield* approvals.promote(record.id) : record
          // The continuation is a message too: stored before this answer, so it outlives this runner.
          yield* self.Resume(new ResumeTask({}), { discard: true })
          return { approval: installed, runner }
        }).pipe(Effect.mapError(remote))

      return TaskEntity.of({
        Start: ({ payload }) =>
          drive(
            "Start",
            Effect.flatMap(state.load(id), (saved) =>
              Option.isSome(saved)
                ? resume(payload)
                : Effect.flatMap(agent.start(payload.prompt, { id, onProgress, answers: answers(payload) }), awaitHandle))
          ),
        Resume: ({ payload }) => drive("Resume", resume(payload)),
        Approve: ({ payload }) => decided(payload, true),
        Reject: ({ payload }) => decided(payload, false),
        Status: () =>
          Effect.gen(function*() {
            const task = yield* state.load(id)
            const driving = Option.isSome(yield* SynchronizedRef.get(current))
            return { runner, driving, task: Option.getOrNull(task) }
          }).pipe(Effect.mapError(remote))
      })
    }),
    // Status is answered while a drive runs; drives of one task are joined above.
    { concurrency: "unbounded" }
  )
