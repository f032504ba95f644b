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
 * all the same, with every audit event it produced (they are in shared memory), and the thread
 * is abandoned; such calls are kept out by the sandbox only opening regular files.
 */
import { Clock, Duration, Effect, Either, Predicate, Queue, Schema } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Worker } from "node:worker_threads"
import { formatParseError } from "../../core/schemaIssues.ts"
import { packageRoot } from "../../packageRoot.ts"
import type { AuditWriteError } from "../Audit.ts"
import { type AuditReader, auditReader, type Dropped, makeAuditBuffer } from "./auditBuffer.ts"
import { compileEngineCode, type EngineCode } from "./engine.ts"
import { SandboxCrashed, type SandboxError, SandboxWorkerMissing, SkillTimeout } from "./errors.ts"
import {
  AuditEvent,
  type JobValue,
  RunMessage,
  WorkerData,
  WorkerReply,
  type WorkerSettings
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
  /** The most bytes of audit events one run may leave in its worker's buffer. */
  readonly auditCapacity: number
}

/** What one run came to, as the main thread saw it. */
export interface RunReport {
  readonly outcome: Either.Either<JobValue, SandboxError>
  readonly output: string
  /** The audit events the run wrote (all of them passed to `onAudit`), as counted against its budget. */
  readonly written: { readonly events: number; readonly bytes: number }
  readonly dropped: Dropped
}

export type OnAudit = (event: string, data: Readonly<Record<string, unknown>>) => Effect.Effect<void, AuditWriteError>

export interface WorkerPool {
  /** Runs `message` on a free worker; `onAudit` receives the run's audit events, in order, as they come. */
  readonly run: (message: RunMessage, onAudit: OnAudit) => Effect.Effect<RunReport, AuditWriteError>
}

/** Events of a worker thread, as one run sees them. */
type Inbound =
  | { readonly _tag: "Reply"; readonly reply: WorkerReply }
  | { readonly _tag: "Garbled"; readonly reason: string }
  | { readonly _tag: "Failed"; readonly error: Error }
  | { readonly _tag: "Exited"; readonly code: number }
  /** Time to read the audit buffer. */
  | { readonly _tag: "Poll" }
  /** The run's deadline (plus grace) passed: the pool has terminated the worker. */
  | { readonly _tag: "Deadline" }

interface Slot {
  readonly worker: Worker
  readonly audit: AuditReader
  /** Where the thread's events go while it runs something. */
  deliver: ((event: Inbound) => void) | undefined
  /** Its engine is loaded: a run posted to it starts at once. */
  ready: boolean
  /** The thread exited or failed: it can run nothing more. */
  dead: boolean
  /** Where the kernel lists the commands the thread started (from `Ready`), or null. */
  commands: string | null
}

/** How long a worker may take to start and load its engine. */
const STARTUP_MS = 30_000
/**
 * How often a run's audit events are read while it runs (and once more when it ends), and the
 * deadline checked: the grace after a deadline is `graceMs` plus up to this.
 */
const POLL_MS = 25
/** How long the pool's scope waits for its terminated workers to exit. */
const EXIT_WAIT_MS = 2_000

const decodeReply = Schema.decodeUnknownEither(WorkerReply)
const decodeAuditEvent = Schema.decodeUnknownEither(AuditEvent)
const encodeRunMessage = Schema.encodeSync(RunMessage)
const encodeWorkerData = Schema.encodeSync(WorkerData)

/**
 * Kills the commands a worker's thread is waiting for. Terminating a thread takes effect only
 * when it runs JavaScript again, and one inside `exec` waits for its command to end (up to the
 * run's deadline): killing the command ends the wait at once, so a stopped run stops now.
 */
const killCommands = (slot: Slot): void => {
  if (slot.commands === null) return
  let listed: string
  try {
    listed = readFileSync(slot.commands, "utf8")
  } catch {
    return // the thread is gone, and its commands with it
  }
  for (const pid of listed.split(" ").filter((word) => /^\d+$/.test(word))) {
    try {
      process.kill(Number(pid), "SIGKILL")
    } catch {
      // It ended between the listing and the kill.
    }
  }
}

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
    const timeoutMs = options.settings.timeoutSeconds * 1000
    // Compiled once, when the first worker starts, and shared by all of them.
    const engineCode = yield* Effect.cached(Effect.tryPromise({
      try: compileEngineCode,
      catch: (error) => `the QuickJS engine did not compile (${String(error)})`
    }))

    const spawn = (code: EngineCode): Slot => {
      const buffer = makeAuditBuffer(options.auditCapacity)
      const worker = new Worker(options.script, {
        workerData: encodeWorkerData({ settings: options.settings, engineCode: code, audit: buffer }),
        resourceLimits: { maxOldGenerationSizeMb: heapLimitMb(options.settings.memoryMb), stackSizeMb: STACK_MB }
      })
      const slot: Slot = { worker, audit: auditReader(buffer), deliver: undefined, ready: false, dead: false, commands: null }
      worker.on("message", (raw: unknown) => {
        const decoded = decodeReply(raw)
        if (Either.isRight(decoded) && decoded.right._tag === "Ready") {
          slot.ready = true
          slot.commands = decoded.right.commands
        }
        slot.deliver?.(Either.match(decoded, {
          onLeft: (error): Inbound => ({ _tag: "Garbled", reason: formatParseError(error) }),
          onRight: (reply): Inbound => ({ _tag: "Reply", reply })
        }))
      })
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

    /** Terminates a worker; the pool's scope waits (a while) for the ones still stopping. */
    const terminate = (slot: Slot): void => {
      slot.deliver = undefined
      const stopped = slot.worker.terminate()
      killCommands(slot)
      stopping.add(stopped)
      const forget = () => stopping.delete(stopped)
      stopped.then(forget, forget)
    }

    const take = Effect.suspend(() => {
      for (let slot = idle.pop(); slot !== undefined; slot = idle.pop()) {
        if (!slot.dead) return Effect.succeed(slot)
      }
      return Effect.map(engineCode, spawn)
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        for (const slot of idle.splice(0)) terminate(slot)
        const all = Promise.allSettled([...stopping])
        // A thread stuck in a system call never exits; it must not hold the scope forever.
        yield* Effect.promise(() => all).pipe(Effect.timeout(Duration.millis(EXIT_WAIT_MS)), Effect.ignore, wallClock)
      })
    )

    /** One run on `slot`; says whether the worker may run again. */
    const runOn = (slot: Slot, message: RunMessage, onAudit: OnAudit) =>
      Effect.flatMap(Queue.unbounded<Inbound>(), (inbox) => {
        const skill = message.request.skill.meta.name
        const offer = (event: Inbound) => void Queue.unsafeOffer(inbox, event)
        // One ticker, in wall time (a plain timer: the limit holds under a TestClock too): it says
        // when to read the audit buffer, and terminates the thread at once when the deadline
        // passes, whatever the loop below is doing. The deadline counts from the post, or from
        // `Ready` for a worker still loading its engine.
        let deadline = Date.now() + (slot.ready ? timeoutMs + options.graceMs : STARTUP_MS)
        const tick = () => {
          if (Date.now() < deadline) return offer({ _tag: "Poll" })
          if (!slot.ready) return offer({ _tag: "Failed", error: new Error(`it did not start within ${STARTUP_MS / 1000} s`) })
          void slot.worker.terminate()
          killCommands(slot)
          offer({ _tag: "Deadline" })
        }
        const post = Effect.sync(() => {
          slot.audit.reset()
          slot.deliver = offer
          slot.worker.ref()
          slot.worker.postMessage(encodeRunMessage(message))
          return setInterval(tick, POLL_MS)
        })

        /** Writes what the run committed to its audit buffer since the last look. */
        const drain = () =>
          Effect.forEach(slot.audit.take(), (frame) =>
            Either.match(decodeAuditEvent(frame), {
              onLeft: (error) => onAudit("sandbox.audit_unreadable", { skill, reason: formatParseError(error) }),
              onRight: ([event, data]) => onAudit(event, data)
            }), { discard: true })
        const end = (outcome: Either.Either<JobValue, SandboxError>, output: string, reusable: boolean) =>
          Effect.map(drain(), () => {
            if (reusable) slot.deliver = undefined
            const report: RunReport = { outcome, output, written: slot.audit.written(), dropped: slot.audit.dropped() }
            return { report, reusable }
          })
        const crashed = (reason: string) => end(Either.left(new SandboxCrashed({ skill, reason })), "", false)

        const receive = Effect.gen(function*() {
          for (;;) {
            const event = yield* Queue.take(inbox)
            switch (event._tag) {
              case "Poll":
                yield* drain()
                break
              case "Reply":
                switch (event.reply._tag) {
                  case "Ready":
                    deadline = Date.now() + timeoutMs + options.graceMs
                    break
                  case "Finished":
                    return yield* end(event.reply.outcome, event.reply.output, !event.reply.retire)
                  case "Unreadable":
                    return yield* crashed(`the sandbox worker could not read ${event.reply.reason}`)
                }
                break
              case "Deadline":
                return yield* end(Either.left(new SkillTimeout({ skill, seconds: options.settings.timeoutSeconds })), "", false)
              case "Exited":
                return yield* crashed(`the sandbox worker thread stopped (exit code ${event.code})`)
              case "Failed":
                return yield* crashed(`the sandbox worker thread failed: ${event.error.message}`)
              case "Garbled":
                return yield* crashed(`the sandbox worker sent a message that does not decode: ${event.reason}`)
            }
          }
        })
        return Effect.acquireUseRelease(post, () => receive, (ticker) => Effect.sync(() => clearInterval(ticker)))
      })

    const run: WorkerPool["run"] = (message, onAudit) =>
      permits.withPermits(1)(
        Effect.acquireUseRelease(
          take,
          (slot) => runOn(slot, message, onAudit),
          (slot, exit) =>
            Effect.sync(() => {
              if (exit._tag === "Failure" || !exit.value.reusable || slot.dead) return terminate(slot)
              slot.worker.unref()
              idle.push(slot)
            })
        ).pipe(
          Effect.map(({ report }) => report),
          // The engine that would not compile fails this run like a crash, and the next one the same.
          Effect.catchIf(Predicate.isString, (reason) =>
            Effect.succeed<RunReport>({
              outcome: Either.left(new SandboxCrashed({ skill: message.request.skill.meta.name, reason })),
              output: "",
              written: { events: 0, bytes: 0 },
              dropped: { events: 0, bytes: 0 }
            })
          )
        )
      )

    return { run } satisfies WorkerPool
  })
