/**
 * The task commands on the task cluster (`--on cluster`, or by default when the Postgres store
 * has a worker): `run` sends the task to the runners and follows it until it finishes or
 * pauses, `resume` asks the runner that holds the task to continue it (or joins the drive
 * already running there), `status` adds who holds the task now, and `approvals approve|reject`
 * record the decision here and then tell the task's runner, which acts only on that record: it
 * promotes an approved draft and continues the task. The outcome, the output, the progress on
 * stderr and the exit codes are those of the same command in one process. The runners have no
 * terminal: a task's questions pause it there; `--yes` travels with `run` and `resume` (the plan,
 * under the `prompt` tier), `--allow-exec` does not (a message grants nothing by itself).
 */
import { Console, Data, Effect, Option } from "effect"
import { NoTaskToResume } from "../../Agent.ts"
import { sanitizeForTerminal } from "../../core/terminalText.ts"
import { Approvals } from "../../layers/Approvals.ts"
import type { RunnerInfo, SendOptions } from "../../layers/Cluster.ts"
import type { Task } from "../../core/task.ts"
import { defaultTask, resolveTaskId, State } from "../../layers/State.ts"
import { followTask } from "../follow.ts"
import { provideCluster } from "../runtime.ts"
import { dim, green } from "../ui.ts"

/** The cluster's module, loaded by the commands that use it (the engine is large). */
const cluster = Effect.flatMap(Effect.promise(() => import("../../layers/Cluster.ts")), ({ TaskCluster }) => TaskCluster)

const short = (id: string): string => id.slice(0, 8)

/** Progress lines go where the agent's own progress goes: the log (info), plain lines on stderr. */
const showProgress = (line: string) => Effect.logInfo(line)

const describeRunners = (runners: ReadonlyArray<RunnerInfo>): string => {
  const healthy = runners.filter((runner) => runner.healthy)
  return healthy.length === 0
    ? "no worker runs now: it waits in the store until one starts"
    : `${healthy.length} worker${healthy.length === 1 ? "" : "s"}: ${healthy.map((runner) => runner.address).join(", ")}`
}

export class ExecGrantNotSent extends Data.TaggedError("ExecGrantNotSent")<{
  readonly command: "run" | "resume"
  /** The task `--task` named, if any. */
  readonly task: string | null
}> {
  override get message() {
    const here = this.command === "run"
      ? `\`luallm-agent --on local run "<request>" --allow-exec\``
      : this.task === null
      ? "`luallm-agent --on local resume --allow-exec`"
      : `\`luallm-agent --on local resume --task ${this.task.slice(0, 8)} --allow-exec\``
    return `--allow-exec is not sent to the task cluster: a message to a runner grants nothing by itself (whoever reaches a runner's port could send one), and exec would run commands on the runner's machine. Nothing was sent. Grant it in this process instead with ${here}, or set approval_tiers.skill_exec to "auto" in the workers' config.`
  }
}

/** `run` on the cluster: a new task, sent to its runner, followed until it finishes or pauses. */
export const runOnCluster = (prompt: string, options: SendOptions) =>
  Effect.gen(function*() {
    const tasks = yield* cluster
    const submitted = tasks.submit(prompt, options)
    yield* Console.error(dim(`task ${short(submitted.id)} goes to the task cluster (${describeRunners(yield* tasks.runners)})`))
    const outcome = yield* followTask(submitted.id, submitted.outcome, showProgress)
    yield* Console.error(dim(`driven by runner ${outcome.runner}`))
    return outcome
  }).pipe(provideCluster)

/**
 * `resume` on the cluster: the task `--task` names (else the most recent unfinished one). A
 * pending approval is not reviewed here (the review runs the draft's tests on this machine):
 * the task stays paused until `approvals approve|reject` sends the decision to its runner.
 */
export const resumeOnCluster = (wanted: Option.Option<string>, options: SendOptions) =>
  Effect.gen(function*() {
    const state = yield* State
    const id = Option.isSome(wanted) ? yield* resolveTaskId(wanted.value) : Option.getOrUndefined(defaultTask(yield* state.list))?.id
    const saved = id === undefined ? Option.none<Task>() : yield* state.load(id)
    if (Option.isNone(saved)) return yield* new NoTaskToResume({ location: state.location })
    const taskId = saved.value.id
    const outcome = yield* followTask(taskId, Effect.flatMap(cluster, (tasks) => tasks.resume(taskId, options)), showProgress)
    yield* Console.error(dim(`driven by runner ${outcome.runner}`))
    return outcome
  }).pipe(provideCluster)

/** Who holds the task now, for `status`: the runner, and whether it drives the task right now. */
export const holderOnCluster = (taskId: string) =>
  Effect.flatMap(cluster, (tasks) => tasks.status(taskId)).pipe(
    Effect.map((status) => ({ runner: status.runner, driving: status.driving, problem: null })),
    // The saved task is shown whatever the runners say.
    Effect.catchAll((error) => Effect.succeed({ runner: null, driving: false, problem: error.message }))
  )

/**
 * `approvals approve|reject` on the cluster: the decision is recorded here, as in one process
 * (where the approval records are), then the runner of the approval's task is told: it promotes
 * an approved draft and continues the task. The same decision given again (its runner did not
 * answer the first time) is not recorded again, only told again; the other decision is refused.
 */
export const decideOnCluster = (id: string, approved: boolean, reason: string) =>
  Effect.gen(function*() {
    const tasks = yield* cluster
    const approvals = yield* Approvals
    const found = yield* approvals.get(id)
    const record = found.status === (approved ? "approved" : "rejected") ? found : yield* approvals.resolve(found.id, approved, reason)
    const { approval, runner } = approved ? yield* tasks.approved(record) : yield* tasks.rejected(record)
    yield* Console.log(
      approved
        ? green(`approved and promoted ${approval.skill_name} → ${approval.promoted_to ?? "?"}`) + dim(` (on runner ${runner})`)
        : `rejected ${approval.skill_name}` + dim(` (runner ${runner} goes on with its task)`)
    )
    const taskId = short(approval.task_id ?? "")
    yield* Console.log(
      `its task ${taskId} goes on on the cluster${approved ? "" : ", to fail with your reason"}; follow it with \`luallm-agent resume --task ${taskId}\``
    )
  }).pipe(provideCluster)

export const describeHolder = (holder: { readonly runner: string | null; readonly driving: boolean; readonly problem: string | null }): string =>
  holder.runner === null
    ? `runner: none answered (${sanitizeForTerminal(holder.problem ?? "")})`
    : `runner: ${holder.runner}${holder.driving ? " is driving it now" : " holds it (not driving it now)"}`
