/**
 * The task cluster: past one process, each task is an `@effect/cluster` entity keyed by its id
 * (`cluster/protocol.ts`), held by one runner at a time (`luallm-agent worker`, `TaskRunner`)
 * and driven there by the runner's `Agent` (`cluster/entity.ts`). Runners and clients share the
 * Postgres store: its tasks, audit log and locks, and the engine's messages, replies and
 * runner registry (`cluster/sharding.ts`). When a runner dies, its shards move to the others
 * after `cluster.lease_seconds` (sooner when a health check finds it gone), and each task it
 * was driving continues from its last saved transition on the runner that takes it.
 *
 * `TaskCluster` is the client side: it sends a task's messages and waits for their answers,
 * from any process that reaches the database (the CLI's `run`, `resume`, `status` and
 * `approvals` when the store has workers, or an app).
 */
import type { AlreadyProcessingMessage, MailboxFull, PersistenceError } from "@effect/cluster/ClusterError"
import type { SocketServerError } from "@effect/platform/SocketServer"
import { ShardingConfig } from "@effect/cluster/ShardingConfig"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Duration, Effect, Layer } from "effect"
import type { AgentOutcome } from "../Agent.ts"
import type { ProgressListener } from "../agent/progress.ts"
import { describeStore, postgresUrl } from "../core/config.ts"
import type { ApprovalRecord } from "./Approvals.ts"
import { AppConfig } from "./Config.ts"
import { taskEntityLayer } from "./cluster/entity.ts"
import { ApprovalDecided, type ApprovalReport, type RemoteTaskError, ResumeTask, StartTask, TaskEntity, type TaskStatus } from "./cluster/protocol.ts"
import { clientLayer, clusterSql, registeredRunners, runnerLayer } from "./cluster/sharding.ts"

export { ApprovalNotDecided, ApprovalOfAnotherTask } from "./cluster/entity.ts"
export { ApprovalReport, RemoteTaskError, TaskEntity, TaskReport, TaskStatus } from "./cluster/protocol.ts"

export class ClusterNeedsPostgres extends Data.TaggedError("ClusterNeedsPostgres")<{ readonly command: string }> {
  override get message() {
    return `\`${this.command}\` needs a Postgres store: the task cluster keeps its tasks and messages in the database its runners share, and \`store\` is "file". Pass --store postgres://user:password@host:5432/db, or set store in the config.`
  }
}

export class ClusterUnavailable extends Data.TaggedError("ClusterUnavailable")<{ readonly url: string; readonly reason: string }> {
  override get message() {
    return `Could not reach the task cluster's tables in ${this.url}: ${this.reason}. Check that the database server runs and that \`store\` (or --store) names it.`
  }
}

export class WorkerListenFailed extends Data.TaggedError("WorkerListenFailed")<{ readonly address: string; readonly reason: string }> {
  override get message() {
    return `The worker could not listen on ${this.address}: ${this.reason}. Pick another port with --port (0 takes a free one) or set cluster.host to an address of this machine.`
  }
}

export class ClusterSendFailed extends Data.TaggedError("ClusterSendFailed")<{
  readonly task: string
  readonly request: string
  readonly reason: string
}> {
  override get message() {
    return `Could not send ${this.request} for task ${this.task.slice(0, 8)} to the cluster: ${this.reason}. Check the database and that a worker runs (\`luallm-agent worker\`); \`luallm-agent status --task ${this.task.slice(0, 8)}\` shows where the task stands.`
  }
}

/** A drive's outcome, with the runner that drove it. */
export interface ClusterOutcome extends AgentOutcome {
  readonly runner: string
}

/** A task sent to the cluster: its id at once, its outcome when a runner has driven it. */
export interface SubmittedTask {
  readonly id: string
  /** Sends `Start` (stored before any runner sees it) and waits until the task finishes or pauses. */
  readonly outcome: Effect.Effect<ClusterOutcome, RemoteTaskError | ClusterSendFailed>
}

/** A registered runner: its address, and whether the others find it healthy. */
export interface RunnerInfo {
  readonly address: string
  readonly healthy: boolean
}

/** What a message may say ahead of time: `confirmPlan` (`--yes`) confirms the plan under the `prompt` tier. */
export interface SendOptions {
  readonly confirmPlan?: boolean
}

export interface TaskClusterShape {
  /** A new task for `prompt`, with a fresh id; nothing is sent until its `outcome` runs. */
  readonly submit: (prompt: string, options?: SendOptions) => SubmittedTask
  /** Drives the saved task on its runner until it finishes or pauses; joins a drive already running. */
  readonly resume: (taskId: string, options?: SendOptions) => Effect.Effect<ClusterOutcome, RemoteTaskError | ClusterSendFailed>
  /**
   * Tells the runner of `approval`'s task that a human approved it (the record must say so):
   * the runner promotes the draft, and the task goes on there.
   */
  readonly approved: (approval: ApprovalRecord) => Effect.Effect<ApprovalReport, RemoteTaskError | ClusterSendFailed>
  /** Likewise for a rejection (the record must say so): the task goes on there, to fail with its reason. */
  readonly rejected: (approval: ApprovalRecord) => Effect.Effect<ApprovalReport, RemoteTaskError | ClusterSendFailed>
  /** Asks the runner that holds the task now: which it is, whether it drives the task, the saved task. */
  readonly status: (taskId: string) => Effect.Effect<TaskStatus, RemoteTaskError | ClusterSendFailed>
  /** The runners registered now (heartbeat within the lease). */
  readonly runners: Effect.Effect<ReadonlyArray<RunnerInfo>, ClusterUnavailable>
}

export class TaskCluster extends Context.Tag("TaskCluster")<TaskCluster, TaskClusterShape>() {}

export interface TaskRunnerShape {
  /** The address this runner registered (`host:port`), where the other runners reach it. */
  readonly address: string
  /** The runners registered now, this one included. */
  readonly runners: Effect.Effect<ReadonlyArray<RunnerInfo>, ClusterUnavailable>
}

/** A runner of the task cluster, running in this process (`luallm-agent worker`). */
export class TaskRunner extends Context.Tag("TaskRunner")<TaskRunner, TaskRunnerShape>() {}

type EngineSendError = MailboxFull | AlreadyProcessingMessage | PersistenceError

const sendFailed = (task: string, request: string) => (error: EngineSendError | RemoteTaskError) =>
  error._tag === "RemoteTaskError"
    ? error
    : new ClusterSendFailed({ task, request, reason: error._tag === "PersistenceError" ? `the store failed (${String(error.cause)})` : error._tag })

/** How long `status` waits for the runner that holds a task to answer. */
const statusTimeout = Duration.seconds(10)

/** The store's database URL, or `ClusterNeedsPostgres` for the file store. */
const databaseFor = (command: string) =>
  Effect.flatMap(AppConfig, ({ config }) => {
    const url = postgresUrl(config.store)
    return url === null ? Effect.fail(new ClusterNeedsPostgres({ command })) : Effect.succeed({ url, cluster: config.cluster })
  })

const unavailable = (url: string) => (error: SqlError | { readonly message: string }) =>
  new ClusterUnavailable({ url: describeStore(url), reason: error.message })

/** The runners registered in `url`'s database now. */
const runnersIn = (url: string, cluster: Parameters<typeof registeredRunners>[0]) =>
  registeredRunners(cluster).pipe(Effect.mapError(unavailable(url)))

/**
 * Whether a task command goes to the cluster: `on` = "cluster" always (the store must be
 * Postgres), "local" never, "auto" when the store is Postgres and a healthy runner is registered.
 */
export const useCluster = (on: "auto" | "cluster" | "local", command: string) =>
  Effect.gen(function*() {
    if (on === "local") return false
    const { config } = yield* AppConfig
    const url = postgresUrl(config.store)
    if (url === null) return on === "cluster" ? yield* new ClusterNeedsPostgres({ command }) : false
    if (on === "cluster") return true
    const runners = yield* Effect.scoped(Effect.flatMap(Layer.build(clusterSql(url)), (context) =>
      runnersIn(url, config.cluster).pipe(Effect.provide(context)))).pipe(Effect.mapError(unavailable(url)))
    return runners.some((runner) => runner.healthy)
  })

/** The client of the cluster on the store's database. */
export const TaskClusterLive: Layer.Layer<TaskCluster, ClusterNeedsPostgres | ClusterUnavailable, AppConfig> = Layer.unwrapEffect(
  Effect.map(databaseFor("the task cluster"), ({ cluster, url }) =>
    Layer.effect(
      TaskCluster,
      Effect.gen(function*() {
        const client = yield* TaskEntity.client
        const sql = yield* SqlClient.SqlClient
        const outcome = (report: { readonly task: ClusterOutcome["task"]; readonly runner: string }): ClusterOutcome => ({
          task: report.task,
          paused: report.task.paused,
          runner: report.runner
        })
        return TaskCluster.of({
          submit: (prompt, options) => {
            const id = crypto.randomUUID()
            return {
              id,
              outcome: client(id).Start(new StartTask({ prompt, confirm_plan: options?.confirmPlan === true })).pipe(
                Effect.map(outcome),
                Effect.mapError(sendFailed(id, "Start"))
              )
            }
          },
          resume: (taskId, options) =>
            client(taskId).Resume(new ResumeTask({ confirm_plan: options?.confirmPlan === true })).pipe(
              Effect.map(outcome),
              Effect.mapError(sendFailed(taskId, "Resume"))
            ),
          approved: (approval) => decided(approval, (task) => client(task).Approve(new ApprovalDecided({ approval: approval.id })), "Approve"),
          rejected: (approval) => decided(approval, (task) => client(task).Reject(new ApprovalDecided({ approval: approval.id })), "Reject"),
          status: (taskId) =>
            client(taskId).Status().pipe(
              Effect.mapError(sendFailed(taskId, "Status")),
              Effect.timeoutFail({
                duration: statusTimeout,
                onTimeout: () => new ClusterSendFailed({ task: taskId, request: "Status", reason: `no runner answered within ${Duration.format(statusTimeout)}` })
              })
            ),
          runners: runnersIn(url, cluster).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        })
      })
    ).pipe(Layer.provide(clientLayer(cluster)), Layer.provide(clusterSql(url)), Layer.mapError(unavailable(url)))
  )
)

/** A decision on an approval goes to the task that asked for it. */
const decided = (
  approval: ApprovalRecord,
  send: (task: string) => Effect.Effect<ApprovalReport, EngineSendError | RemoteTaskError>,
  request: string
) =>
  approval.task_id === null
    ? Effect.fail(new ClusterSendFailed({ task: approval.id, request, reason: `approval ${approval.id.slice(0, 8)} names no task` }))
    : send(approval.task_id).pipe(Effect.mapError(sendFailed(approval.task_id, request)))

/**
 * A runner in this process: listens on `cluster.host` and `cluster.port` (0: a free port),
 * registers in the store's database and drives the tasks of its shards with the `Agent` and
 * services the app provides. `progress(id)` receives each task's progress.
 */
export const TaskRunnerLive = (progress: (taskId: string) => ProgressListener) =>
  Layer.unwrapEffect(
    Effect.map(databaseFor("worker"), ({ cluster, url }) =>
      Layer.effect(
        TaskRunner,
        Effect.gen(function*() {
          const sharding = yield* ShardingConfig
          const sql = yield* SqlClient.SqlClient
          const address = sharding.runnerAddress
          return TaskRunner.of({
            address: address._tag === "Some" ? `${address.value.host}:${address.value.port}` : "none",
            runners: runnersIn(url, cluster).pipe(Effect.provideService(SqlClient.SqlClient, sql))
          })
        })
      ).pipe(
        Layer.provideMerge(taskEntityLayer(progress)),
        Layer.provide(runnerLayer(cluster)),
        Layer.provide(clusterSql(url)),
        Layer.mapError((error: SqlError | SocketServerError) =>
          error._tag === "SocketServerError"
            ? new WorkerListenFailed({ address: `${cluster.host}:${cluster.port}`, reason: String(error.cause) })
            : unavailable(url)(error)
        )
      )
    )
  )
