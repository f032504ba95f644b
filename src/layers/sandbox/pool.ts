/**
 * The worker threads skill runs happen in: at most `size` workers, started on first need and
 * kept warm (each loads its QuickJS engine when it starts), one run at a time each, reused for
 * the next run unless the run left it broken. The pool belongs to the scope it was made in
 * (the `Sandbox` layer's): closing that scope terminates every worker.
 *
 * Why our own pool over `node:worker_threads`, not @effect/platform's `Worker`: that module
 * interrupts a worker by sending it a message, which a worker busy in a synchronous QuickJS
 * loop or blocked in a host call never reads. The wall-time limit must hold however the time
 * is spent, so at the deadline (plus a small grace) this pool terminates the thread itself,
 * reports `SkillTimeout` and starts a fresh worker for the next run.
 *
 * What terminating cannot do: a thread blocked inside a system call (a read from a FIFO, a hung
 * network file system) only stops when the call returns. The run is reported at its deadline
 * all the same and the thread is abandoned; such calls are kept out by the sandbox only opening
 * regular files.
 */
import { Clock, Duration, Effect, Either, Fiber, Queue, Schema } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { Worker } from "node:worker_threads"
import { packageRoot } from "../../packageRoot.ts"
import type { AuditWriteError } from "../Audit.ts"
import { SandboxCrashed, type SandboxError, SandboxWorkerMissing, SkillTimeout } from "./errors.ts"
import {
  auditLineBytes,
  describeParseError,
  type Dropped,
  type JobValue,
  RunMessage,
  WorkerReply,
  WorkerSettings
} from "./protocol.ts"

/** The bundled worker entry (`sandbox/workerMain.ts`), built by `npm run build`. */
export const sandboxWorkerScript = join(packageRoot, "dist", "sandboxWorker.cjs")

export interface PoolOptions {
  readonly script: string
  /** The most workers alive at once: `limits.max_parallel_nodes`. */
  readonly size: number
  readonly settings: WorkerSettings
  /** After the run's own deadline, how long the worker has to report it before it is terminated. */
  readonly graceMs: number
}

/** What one run came to, as the main thread saw it. */
export interface RunReport {
  readonly outcome: Either.Either<JobValue, SandboxError>
  readonly output: string
  /** The audit events that reached the main thread (all written through `onAudit`). */
  readonly written: { readonly events: number; readonly bytes: number }
  readonly dropped: Dropped
  /** False when the worker was stopped before it could report its final count of dropped events. */
  readonly droppedExact: boolean
}

export interface WorkerPool {
  /** Runs `message` on a free worker; `onAudit` receives the run's audit events as they happen. */
  readonly run: (
    message: RunMessage,
    onAudit: (event: string, data: Readonly<Record<string, unknown>>) => Effect.Effect<void, AuditWriteError>
  ) => Effect.Effect<RunReport, AuditWriteError>
}

/** Events of a worker thread, as one run sees them. */
type Inbound =
  | { readonly _tag: "Reply"; readonly reply: WorkerReply }
  | { readonly _tag: "Garbled"; readonly reason: string }
  | { readonly _tag: "Failed"; readonly error: Error }
  | { readonly _tag: "Exited"; readonly code: number }
  /** The pool terminated the worker at the run's deadline. */
  | { readonly _tag: "Deadline" }
  /** The worker was terminated and did not exit in time: it is stuck in a system call. */
  | { readonly _tag: "Gone" }

interface Slot {
  readonly worker: Worker
  /** Where the thread's events go while it runs something. */
  deliver: ((event: Inbound) => void) | undefined
  /** The thread exited or failed: it can run nothing more. */
  dead: boolean
}

/** How long a worker may take to load its engine before a run starts. */
const STARTUP_MS = 30_000
/** How long a terminated worker has to exit before it is given up for stuck. */
const EXIT_WAIT_MS = 1_000

const decodeReply = Schema.decodeUnknownEither(WorkerReply)
const encodeRunMessage = Schema.encodeSync(RunMessage)
const encodeSettings = Schema.encodeSync(WorkerSettings)

/** Real time, also when the caller runs under a `TestClock`: the limit is wall time. */
const wallClock = Effect.withClock(Clock.make())

/**
 * A skill's memory is the engine's own (WebAssembly memory, capped by `skill_memory_mb`); the
 * worker's JavaScript heap holds the host's copies (file text on its way in, results on their
 * way out), bounded by the same limit.
 */
const heapLimitMb = (memoryMb: number): number => 64 + 4 * memoryMb

/**
 * The thread's native stack, as on the main thread (V8's default is just under 1 MB; a worker's
 * is 4 MB): QuickJS's native recursion (JSON of deeply nested data) must overflow it quickly
 * and surface as `SkillMemoryExceeded`, not grind on until the deadline.
 */
const STACK_MB = 1

/** The pool, or the error that says the worker bundle is missing. */
export const makeWorkerPool = (options: PoolOptions) =>
  Effect.gen(function*() {
    if (!existsSync(options.script)) return yield* new SandboxWorkerMissing({ script: options.script })
    const permits = yield* Effect.makeSemaphore(options.size)
    const idle: Array<Slot> = []
    const stopping = new Set<Promise<unknown>>()
    const workerData = encodeSettings(options.settings)

    const spawn = (): Slot => {
      const worker = new Worker(options.script, {
        workerData,
        resourceLimits: { maxOldGenerationSizeMb: heapLimitMb(options.settings.memoryMb), stackSizeMb: STACK_MB }
      })
      const slot: Slot = { worker, deliver: undefined, dead: false }
      worker.on("message", (raw: unknown) =>
        slot.deliver?.(Either.match(decodeReply(raw), {
          onLeft: (error): Inbound => ({ _tag: "Garbled", reason: describeParseError(error) }),
          onRight: (reply): Inbound => ({ _tag: "Reply", reply })
        })))
      worker.on("error", (error) => {
        slot.dead = true
        slot.deliver?.({ _tag: "Failed", error })
      })
      worker.on("exit", (code) => {
        slot.dead = true
        slot.deliver?.({ _tag: "Exited", code })
      })
      return slot
    }

    /** Terminates a worker; the pool's scope waits for the ones still stopping. */
    const terminate = (slot: Slot): void => {
      slot.deliver = undefined
      const stopped = slot.worker.terminate()
      stopping.add(stopped)
      const forget = () => stopping.delete(stopped)
      stopped.then(forget, forget)
    }

    const take = Effect.sync((): Slot => {
      for (let slot = idle.pop(); slot !== undefined; slot = idle.pop()) {
        if (!slot.dead) return slot
      }
      return spawn()
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        for (const slot of idle.splice(0)) terminate(slot)
        const all = Promise.allSettled([...stopping])
        // A thread stuck in a system call never exits; it must not hold the scope forever.
        yield* Effect.promise(() => all).pipe(Effect.timeout(Duration.millis(EXIT_WAIT_MS * 2)), Effect.ignore, wallClock)
      })
    )

    const runOn = (
      slot: Slot,
      message: RunMessage,
      onAudit: (event: string, data: Readonly<Record<string, unknown>>) => Effect.Effect<void, AuditWriteError>
    ) =>
      Effect.gen(function*() {
        const skill = message.request.skill.meta.name
        const timeoutMs = options.settings.timeoutSeconds * 1000
        const inbox = yield* Queue.unbounded<Inbound>()
        slot.deliver = (event) => void Queue.unsafeOffer(inbox, event)
        slot.worker.ref()
        slot.worker.postMessage(encodeRunMessage(message))

        // One timer at a time: the start-up allowance, then the run's deadline, then the wait
        // for a terminated worker to exit. Each only posts an event; this loop acts on it.
        const scope = yield* Effect.scope
        let timer: Fiber.RuntimeFiber<void> | undefined
        const arm = (ms: number, event: Inbound, before: () => void = () => undefined) =>
          Effect.gen(function*() {
            if (timer !== undefined) yield* Fiber.interrupt(timer)
            const fire = Effect.sync(() => {
              before()
              Queue.unsafeOffer(inbox, event)
            })
            timer = yield* Effect.forkIn(wallClock(Effect.zipRight(Effect.sleep(Duration.millis(ms)), fire)), scope)
          })
        // The deadline terminates the thread at once, however long the audit queue behind it is.
        const terminateNow = () => void slot.worker.terminate()
        yield* arm(STARTUP_MS, { _tag: "Failed", error: new Error(`it did not start within ${STARTUP_MS / 1000} s`) })

        let written = { events: 0, bytes: 0 }
        let dropped: Dropped = { events: 0, bytes: 0 }
        let timedOut = false
        const ended = (outcome: Either.Either<JobValue, SandboxError>, output: string, exact: boolean, reusable: boolean) =>
          Effect.sync(() => {
            if (reusable) slot.deliver = undefined
            return { report: { outcome, output, written, dropped, droppedExact: exact } satisfies RunReport, reusable }
          })
        const crashed = (reason: string) => ended(Either.left(new SandboxCrashed({ skill, reason })), "", false, false)
        const timeout = () => ended(Either.left(new SkillTimeout({ skill, seconds: options.settings.timeoutSeconds })), "", false, false)

        for (;;) {
          const event = yield* Queue.take(inbox)
          switch (event._tag) {
            case "Reply": {
              const reply = event.reply
              switch (reply._tag) {
                case "Started":
                  yield* arm(timeoutMs + options.graceMs, { _tag: "Deadline" }, terminateNow)
                  break
                case "Audit":
                  written = {
                    events: written.events + 1,
                    bytes: written.bytes + auditLineBytes(reply.event, JSON.stringify(reply.data))
                  }
                  yield* onAudit(reply.event, reply.data)
                  break
                case "AuditDropped":
                  dropped = reply.dropped
                  break
                case "Finished":
                  dropped = reply.dropped
                  return yield* ended(reply.outcome, reply.output, true, !reply.retire)
                case "Unreadable":
                  return yield* crashed(`the sandbox worker could not read ${reply.reason}`)
              }
              break
            }
            case "Deadline":
              // Keep reading: what the worker posted before it was terminated still arrives, up to its exit.
              timedOut = true
              yield* arm(EXIT_WAIT_MS, { _tag: "Gone" })
              break
            case "Exited":
            case "Gone":
              if (timedOut) return yield* timeout()
              return yield* crashed(`the sandbox worker thread stopped (exit code ${event._tag === "Exited" ? event.code : "none"})`)
            case "Failed":
              return yield* crashed(`the sandbox worker thread failed: ${event.error.message}`)
            case "Garbled":
              return yield* crashed(`the sandbox worker sent a message that does not decode: ${event.reason}`)
          }
        }
      }).pipe(Effect.scoped)

    const run: WorkerPool["run"] = (message, onAudit) =>
      permits.withPermits(1)(
        Effect.acquireUseRelease(
          take,
          (slot) => Effect.map(runOn(slot, message, onAudit), ({ report, reusable }) => ({ report, reusable, slot })),
          (slot, exit) =>
            Effect.sync(() => {
              const reusable = exit._tag === "Success" && exit.value.reusable && !slot.dead
              if (!reusable) return terminate(slot)
              slot.worker.unref()
              idle.push(slot)
            })
        ).pipe(Effect.map(({ report }) => report))
      )

    return { run } satisfies WorkerPool
  })
