/**
 * Inside a sandbox worker thread: one QuickJS engine, loaded when the thread starts (so a warm
 * worker runs at once), and one run at a time on it, each in a fresh runtime and context
 * (`run.ts`). The host port is built here from the settings' `home` and `cwd`, so every host
 * call of a run is made synchronously on this thread, never on the main one.
 *
 * The main thread (`pool.ts`) may terminate this thread at any moment (a run past its wall-time
 * deadline, Ctrl-C): everything a run reports is posted as it happens, nothing is kept here
 * for later. A run that leaves the engine full or broken says so (`retire`), and the main
 * thread replaces the worker instead of reusing it.
 */
import { Either, Schema } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import { engineFull, makeEngine } from "./engine.ts"
import { SandboxCrashed, type SandboxError } from "./errors.ts"
import type { SandboxHost } from "./host.ts"
import type { RunSettings } from "./instance.ts"
import {
  type AuditBudget,
  auditLineBytes,
  describeParseError,
  type Dropped,
  type HostEnvironment,
  type Job,
  type JobValue,
  RunMessage,
  WorkerReply,
  WorkerSettings
} from "./protocol.ts"
import { SandboxRun } from "./run.ts"

/** How often, at most, a run that is over its audit budget reports what it has dropped so far. */
const DROP_REPORT_MS = 100

type Post = (reply: typeof WorkerReply.Encoded) => void

/**
 * A run's audit events, posted one by one until the budget is spent; after that they are only
 * counted. The one refusal that ends a run is always posted: it says why the run stopped.
 */
class AuditStream {
  private events = 0
  private bytes = 0
  private lastReport = 0
  readonly dropped: { events: number; bytes: number } = { events: 0, bytes: 0 }

  constructor(private readonly budget: AuditBudget, private readonly post: Post) {}

  readonly emit = (event: string, data: Readonly<Record<string, unknown>>): void => {
    const json = JSON.stringify(data)
    const size = auditLineBytes(event, json)
    const overBudget = this.events >= this.budget.events || this.bytes + size > this.budget.bytes
    if (overBudget && event !== "sandbox.refused") {
      this.dropped.events++
      this.dropped.bytes += size
      const now = Date.now()
      if (now - this.lastReport >= DROP_REPORT_MS) {
        this.lastReport = now
        this.post({ _tag: "AuditDropped", dropped: { ...this.dropped } })
      }
      return
    }
    this.events++
    this.bytes += size
    this.post({ _tag: "Audit", event, data: json })
  }
}

const perform = (run: SandboxRun, job: Job): Either.Either<JobValue, SandboxError> => {
  switch (job._tag) {
    case "Call":
      return Either.map(run.call(job.fn, job.args), (json): JobValue => ({ _tag: "Json", json }))
    case "ExportedFunctions":
      return Either.map(run.exportedFunctions(), (names): JobValue => ({ _tag: "Names", names }))
    case "TestNames":
      return Either.map(run.testNames(job.tests), (names): JobValue => ({ _tag: "Names", names }))
    case "RunTest":
      return Either.map(run.runTest(job.tests, job.index), (outcome): JobValue => ({ _tag: "TestOutcome", outcome }))
  }
}

const decodeSettings = Schema.decodeUnknownEither(WorkerSettings)
const decodeRunMessage = Schema.decodeUnknownEither(RunMessage)
const encodeReply = Schema.encodeSync(WorkerReply)

/** Serves runs on this worker thread; `makeHost` builds the host port the skills' calls reach. */
export const serveRuns = (makeHost: (environment: HostEnvironment) => SandboxHost): void => {
  const port = parentPort
  if (port === null) throw new Error("serveRuns runs in a worker thread (see sandbox/pool.ts)")
  const post: Post = (reply) => port.postMessage(reply)
  const unreadable = (reason: string) => post(encodeReply({ _tag: "Unreadable", reason }))
  const settings = decodeSettings(workerData)
  if (Either.isLeft(settings)) return unreadable(`the worker's settings: ${describeParseError(settings.left)}`)
  const { cwd, home, ...limits } = settings.right
  const runSettings: RunSettings = { ...limits, host: makeHost({ home, cwd }) }
  const engine = makeEngine(limits.memoryMb)
  const loaded = engine.load.then(
    (module) => Either.right(module),
    (error: unknown) => Either.left(`the QuickJS engine did not load (${String(error)})`)
  )
  const finish = (outcome: Either.Either<JobValue, SandboxError>, output: string, dropped: Dropped) =>
    post(encodeReply({ _tag: "Finished", outcome, output, dropped, retire: engine.poisoned || engineFull(engine) }))

  const serve = async (raw: unknown): Promise<void> => {
    const message = decodeRunMessage(raw)
    if (Either.isLeft(message)) return unreadable(`a run request: ${describeParseError(message.left)}`)
    const { budget, job, request } = message.right
    const module = await loaded
    if (Either.isLeft(module)) {
      engine.poisoned = true
      return finish(Either.left(new SandboxCrashed({ skill: request.skill.meta.name, reason: module.left })), "", { events: 0, bytes: 0 })
    }
    post({ _tag: "Started" })
    const audit = new AuditStream(budget, post)
    const run = new SandboxRun(engine, () => module.right.newRuntime(), request, runSettings, audit.emit)
    let outcome: Either.Either<JobValue, SandboxError>
    try {
      outcome = perform(run, job)
    } finally {
      run.dispose()
    }
    finish(outcome, run.output.text(), audit.dropped)
  }
  port.on("message", (raw: unknown) => void serve(raw))
}
