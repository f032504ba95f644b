/**
 * Inside a sandbox worker thread: one QuickJS engine, instantiated from the shared compiled code
 * when the thread starts (so a warm worker runs at once), and one run at a time on it, each in a fresh runtime and context
 * (`run.ts`). The host port is built here from the settings' `home` and `cwd`, so every host
 * call of a run is made synchronously on this thread, never on the main one.
 *
 * The main thread (`pool.ts`) may terminate this thread at any moment (a run past its wall-time
 * deadline, Ctrl-C): a run's audit events go to the shared audit buffer as they happen, where
 * the main thread finds them however the thread ended. A run that leaves the engine full or
 * broken says so (`retire`), and the main thread replaces the worker instead of reusing it.
 */
import { Either, Schema } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import { formatParseError } from "../../core/schemaIssues.ts"
import { auditWriter } from "./auditBuffer.ts"
import { engineFull, makeEngine } from "./engine.ts"
import { SandboxCrashed, type SandboxError } from "./errors.ts"
import { commandsOfThisThread, type SandboxHost } from "./host.ts"
import type { RunSettings } from "./instance.ts"
import { type HostEnvironment, type Job, type JobValue, RunMessage, WorkerData, WorkerReply } from "./protocol.ts"
import { SandboxRun } from "./run.ts"

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

const decodeWorkerData = Schema.decodeUnknownEither(WorkerData)
const decodeRunMessage = Schema.decodeUnknownEither(RunMessage)
const encodeReply = Schema.encodeSync(WorkerReply)

/** Serves runs on this worker thread; `makeHost` builds the host port the skills' calls reach. */
export const serveRuns = (makeHost: (environment: HostEnvironment) => SandboxHost): void => {
  const port = parentPort
  if (port === null) throw new Error("serveRuns runs in a worker thread (see sandbox/pool.ts)")
  const post = (reply: WorkerReply) => port.postMessage(encodeReply(reply))
  const unreadable = (reason: string) => post({ _tag: "Unreadable", reason })
  const data = decodeWorkerData(workerData)
  if (Either.isLeft(data)) return unreadable(`the worker's settings: ${formatParseError(data.left)}`)
  const { audit, engineCode, settings } = data.right
  const { cwd, home, ...limits } = settings
  const runSettings: RunSettings = { ...limits, host: makeHost({ home, cwd }) }
  const engine = makeEngine(limits.memoryMb, engineCode)
  const loaded = engine.load.then(
    (module) => Either.right(module),
    (error: unknown) => Either.left(`the QuickJS engine did not load (${String(error)})`)
  )
  const finish = (outcome: Either.Either<JobValue, SandboxError>, output: string) =>
    post({ _tag: "Finished", outcome, output, retire: engine.poisoned || engineFull(engine) })

  const serve = async (raw: unknown): Promise<void> => {
    const message = decodeRunMessage(raw)
    if (Either.isLeft(message)) return unreadable(`a run request: ${formatParseError(message.left)}`)
    const { budget, job, request } = message.right
    const module = await loaded
    if (Either.isLeft(module)) {
      engine.poisoned = true
      return finish(Either.left(new SandboxCrashed({ skill: request.skill.meta.name, reason: module.left })), "")
    }
    const run = new SandboxRun(engine, () => module.right.newRuntime(), request, runSettings, auditWriter(audit, budget))
    let outcome: Either.Either<JobValue, SandboxError>
    try {
      outcome = perform(run, job)
    } finally {
      run.dispose()
    }
    finish(outcome, run.output.text())
  }
  port.on("message", (raw: unknown) => void serve(raw))
  void loaded.then(() => post({ _tag: "Ready", commands: commandsOfThisThread() }))
}
