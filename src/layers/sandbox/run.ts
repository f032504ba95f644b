/**
 * One sandboxed run (`SandboxRun`): a fresh runtime + context for the skill and one more for
 * each dependency it `require`s, each with its own declared paths. Everything here is
 * synchronous because QuickJS host calls are; it runs inside a worker thread (`worker.ts`).
 *
 * Limits: the interrupt handler stops the run at its deadline (shared by the skill, its
 * dependencies, its promise jobs and its commands), and every host call made after the deadline
 * is refused; what neither can catch (a host call that blocks) is the main thread's to stop, by
 * terminating the worker (`pool.ts`). Memory is the engine's capped WebAssembly
 * memory (`sandbox/engine.ts`); `setMaxStackSize` catches ordinary recursion, and the native
 * paths that exhaust the host's stack first (deeply nested JSON, parser nesting) surface as a
 * host RangeError, after which the engine is poisoned and replaced.
 * Values cross the boundary as JSON text only; no handle to a host object ever enters.
 */
import { tooDeepIn } from "../../core/jsonText.ts"
import { Either, Schema } from "effect"
import type { QuickJSHandle, QuickJSRuntime } from "quickjs-emscripten"
import { detectModuleForm } from "../../core/skillMeta.ts"
import { harnessFileName, harnessSource, TestNames, TestOutcome as TestOutcomeSchema, type TestOutcome } from "../../core/testHarness.ts"
import { type Engine, engineFull } from "./engine.ts"
import {
  clip,
  FunctionNotExported,
  OutputTooLarge,
  ResultNotJson,
  SandboxCrashed,
  type SandboxError,
  SkillMemoryExceeded,
  SkillStalled,
  SkillThrew,
  SkillTimeout,
  UndeclaredDependency
} from "./errors.ts"
import { GuestError, installGlobals, moduleName, parseGuestJson } from "./globals.ts"
import {
  type Bridge,
  bridgeSource,
  type Failure,
  Instance,
  OutputBuffer,
  reexportSource,
  type RunRequest,
  type RunScope,
  type RunSettings,
  type SkillSource,
  type TestSource
} from "./instance.ts"
import { makePathGuard, makeRunPaths, type RunPaths } from "./paths.ts"

const isHostStackOverflow = (error: unknown): boolean =>
  error instanceof RangeError && /call stack/i.test(error.message)

const Described = Schema.parseJson(Schema.Struct({ name: Schema.String, message: Schema.String, stack: Schema.String }))
const decodeDescribed = Schema.decodeUnknownEither(Described)
const decodeTestNames = Schema.decodeUnknownEither(Schema.parseJson(TestNames))
const decodeTestOutcome = Schema.decodeUnknownEither(Schema.parseJson(TestOutcomeSchema))
const decodeNames = Schema.decodeUnknownEither(Schema.parseJson(Schema.Array(Schema.String)))

/** Where a run's audit events go, one by one as they happen. */
export type AuditSink = (event: string, data: Readonly<Record<string, unknown>>) => void

export class SandboxRun implements RunScope {
  readonly output: OutputBuffer
  readonly deadline: number
  private stopReason: SandboxError | undefined
  private readonly instances: Array<Instance> = []
  private readonly dependencyInstances = new Map<string, Instance>()
  private readonly paths: RunPaths
  private execDir: string | undefined

  constructor(
    readonly engine: Engine,
    private readonly newRuntime: () => QuickJSRuntime,
    readonly request: RunRequest,
    readonly settings: RunSettings,
    private readonly sink: AuditSink
  ) {
    this.deadline = Date.now() + settings.timeoutSeconds * 1000
    this.output = new OutputBuffer(settings.maxOutputChars)
    this.paths = makeRunPaths({
      host: settings.host,
      allowedPaths: settings.allowedPaths,
      protectedPaths: settings.protectedPaths,
      mode: request.mode,
      maxWriteBytes: settings.maxWriteBytes
    })
  }

  audit(event: string, data: Readonly<Record<string, unknown>>): void {
    this.sink(event, data)
  }

  /** The reason the run must stop; past the deadline that is a timeout, so host calls stop too. */
  get stopped(): SandboxError | undefined {
    return this.stopIfOverdue(this.request.skill.meta.name)
  }

  /** Records the error that ends the run; the interrupt handler then stops every VM. */
  stop(error: SandboxError): SandboxError {
    if (this.stopReason === undefined) {
      this.stopReason = error
      this.audit("sandbox.refused", { skill: error.skill, error: error._tag, message: error.message })
    }
    return this.stopReason
  }

  /** Milliseconds left before the deadline. */
  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now())
  }

  /** The reason the run must stop, if any; passing the deadline makes it a timeout of `skill`. */
  private stopIfOverdue(skill: string): SandboxError | undefined {
    if (this.stopReason === undefined && Date.now() > this.deadline) {
      this.stop(new SkillTimeout({ skill, seconds: this.settings.timeoutSeconds }))
    }
    return this.stopReason
  }

  /** An empty directory commands run in, made on first use and removed with the run. */
  commandDirectory(): string {
    this.execDir ??= this.settings.host.makeTempDirectory()
    return this.execDir
  }

  // ---- instances -------------------------------------------------------------------------

  private createInstance(skill: SkillSource): Either.Either<Instance, Failure> {
    const rt = this.newRuntime()
    rt.setMemoryLimit(this.settings.memoryMb * 1024 * 1024)
    rt.setMaxStackSize(this.settings.stackBytes)
    rt.setInterruptHandler(() => this.stopIfOverdue(skill.meta.name) !== undefined)
    const ctx = rt.newContext()
    const bridgeObject = ctx.evalCode(bridgeSource, "luallm:bridge", { type: "global" })
    if (bridgeObject.error !== undefined) {
      bridgeObject.error.dispose()
      ctx.dispose()
      rt.dispose()
      return Either.left(new SandboxCrashed({ skill: skill.meta.name, reason: "the sandbox bridge did not evaluate" }))
    }
    const get = (name: keyof Bridge) => ctx.getProp(bridgeObject.value, name)
    const bridge: Bridge = {
      toJson: get("toJson"),
      fromJson: get("fromJson"),
      format: get("format"),
      describe: get("describe"),
      functionNames: get("functionNames"),
      invoke: get("invoke"),
      loadCommonJs: get("loadCommonJs")
    }
    bridgeObject.value.dispose()
    const guard = makePathGuard(this.paths, skill.meta.name, skill.meta.paths)
    const instance = new Instance(skill, rt, ctx, bridge, guard)
    for (const handle of Object.values(bridge)) instance.own(handle)
    this.instances.push(instance)
    rt.setModuleLoader(
      (requested) => this.loadModuleSource(instance, requested),
      (_base, requested) => requested
    )
    installGlobals(this, instance)
    return Either.right(instance)
  }

  private loadModuleSource(instance: Instance, requested: string): string | { readonly error: Error } {
    const name = moduleName(requested)
    const local = instance.localModules.get(name)
    if (local !== undefined) {
      return Either.match(this.functionNames(instance, local), {
        onLeft: () => ({ error: new Error(`module ${name} could not be read`) }),
        onRight: (names) => reexportSource(name, names)
      })
    }
    const dependency = this.request.dependencies.get(name)
    if (dependency !== undefined && instance.skill.meta.dependencies.includes(name)) {
      return reexportSource(name, dependency.meta.public_functions)
    }
    return { error: this.refuseDependency(instance, requested) }
  }

  /** Records an undeclared require/import and returns the error the guest sees. */
  private refuseDependency(instance: Instance, requested: string): GuestError {
    const error = this.stop(
      new UndeclaredDependency({ skill: instance.name, requested, declared: instance.skill.meta.dependencies })
    )
    return new GuestError("Error", error.message)
  }

  /** The sandbox of a dependency, created on first `require`, shared for the rest of the run. */
  dependencyInstance(name: string): Either.Either<Instance, Failure> {
    const existing = this.dependencyInstances.get(name)
    if (existing !== undefined) return Either.right(existing)
    const skill = this.request.dependencies.get(name)
    if (skill === undefined) {
      return Either.left(new SandboxCrashed({ skill: name, reason: `the dependency ${name} was not resolved before the run` }))
    }
    return Either.map(this.loadSkill(skill), (instance) => {
      this.dependencyInstances.set(name, instance)
      return instance
    })
  }

  /** A fresh instance with `skill` evaluated; its exports are kept for the run. */
  private loadSkill(skill: SkillSource): Either.Either<Instance, Failure> {
    return Either.flatMap(this.createInstance(skill), (instance) =>
      Either.map(this.evaluateModule(instance, skill), (exports) => {
        instance.localModules.set(skill.meta.name, instance.own(exports))
        return instance
      }))
  }

  /** Evaluates a skill or test file in either module form; returns its exports. */
  private evaluateModule(instance: Instance, source: { readonly file: string; readonly code: string }): Either.Either<QuickJSHandle, Failure> {
    const { ctx } = instance
    if (detectModuleForm(source.code) === "esm") {
      const evaluated = ctx.evalCode(source.code, source.file, { type: "module" })
      if (evaluated.error !== undefined) return Either.left(this.consumeThrown(instance, evaluated.error))
      return this.settle(instance, evaluated.value, "the module")
    }
    // The wrapper shares line 1 with the code, so line numbers in errors stay the file's own.
    const wrapped = ctx.evalCode(`(function (module, exports, require) {${source.code}\n})`, source.file, { type: "global" })
    if (wrapped.error !== undefined) return Either.left(this.consumeThrown(instance, wrapped.error))
    const requireFunction = instance.requireFunction ?? ctx.undefined
    const exports = this.callIn(instance, instance.bridge.loadCommonJs, [wrapped.value, requireFunction])
    wrapped.value.dispose()
    return exports
  }

  // ---- calling into a VM ----------------------------------------------------------------

  /** Calls `fn` in `instance` (args are not consumed); the result handle is the caller's. */
  callIn(instance: Instance, fn: QuickJSHandle, args: ReadonlyArray<QuickJSHandle>): Either.Either<QuickJSHandle, Failure> {
    const result = instance.ctx.callFunction(fn, instance.ctx.undefined, ...args)
    if (result.error !== undefined) return Either.left(this.consumeThrown(instance, result.error))
    return Either.right(result.value)
  }

  /** Calls a bridge function that returns a string. */
  callForString(instance: Instance, fn: QuickJSHandle, args: ReadonlyArray<QuickJSHandle>): Either.Either<string, Failure> {
    return Either.flatMap(this.callIn(instance, fn, args), (handle) => {
      const text = instance.ctx.typeof(handle) === "string" ? this.readString(instance, handle) : Either.right("")
      handle.dispose()
      return text
    })
  }

  /**
   * A guest string as a host string. The engine copies strings as C strings, which end at
   * the first NUL, so a string whose length does not survive the copy comes through JSON.
   */
  readString(instance: Instance, handle: QuickJSHandle): Either.Either<string, Failure> {
    const { ctx } = instance
    const text = ctx.getString(handle)
    const lengthHandle = ctx.getProp(handle, instance.lengthKey)
    const length = ctx.getNumber(lengthHandle)
    lengthHandle.dispose()
    if (length === text.length) return Either.right(text)
    return Either.map(this.toJson(instance, handle), (json) => {
      const decoded = parseGuestJson(json)
      return typeof decoded === "string" ? decoded : text
    })
  }

  /** A host string as a new guest string (through JSON when it holds a NUL, see `readString`). */
  newString(instance: Instance, text: string): Either.Either<QuickJSHandle, Failure> {
    return text.includes("\u0000") ? this.fromJson(instance, JSON.stringify(text)) : Either.right(instance.ctx.newString(text))
  }

  /** Waits for `handle` (consumed) to settle, running the runtime's jobs within the deadline. */
  settle(instance: Instance, handle: QuickJSHandle, what: string): Either.Either<QuickJSHandle, Failure> {
    const { ctx, rt } = instance
    for (;;) {
      const state = ctx.getPromiseState(handle)
      if (state.type === "fulfilled") {
        if (state.notAPromise === true) return Either.right(handle)
        handle.dispose()
        return Either.right(state.value)
      }
      if (state.type === "rejected") {
        handle.dispose()
        return Either.left(this.consumeThrown(instance, state.error))
      }
      const stop = this.stopIfOverdue(instance.name)
      if (stop !== undefined || !rt.hasPendingJob()) {
        handle.dispose()
        // A job that could not even allocate its rejection leaves its promise pending forever.
        if (stop === undefined && engineFull(this.engine)) return Either.left(this.stop(this.heapExceeded(instance)))
        return Either.left(stop ?? new SkillStalled({ skill: instance.name, function: what }))
      }
      const jobs = rt.executePendingJobs(64)
      if (jobs.error !== undefined) {
        handle.dispose()
        return Either.left(this.consumeThrown(instance, jobs.error))
      }
    }
  }

  /** Turns a thrown VM value (consumed) into a failure: the run's stop reason wins. */
  private consumeThrown(instance: Instance, thrown: QuickJSHandle): Failure {
    const failure = this.classify(instance, thrown)
    thrown.dispose()
    return failure
  }

  private classify(instance: Instance, thrown: QuickJSHandle): Failure {
    const stopped = this.stopIfOverdue(instance.name)
    if (stopped !== undefined) return stopped
    const heapFull = this.heapExceeded(instance)
    if (engineFull(this.engine)) return this.stop(heapFull)
    const described = instance.ctx.callFunction(instance.bridge.describe, instance.ctx.undefined, thrown)
    if (described.error !== undefined) {
      described.error.dispose()
      return this.stop(heapFull)
    }
    // JSON text: any NUL in it is escaped, so the plain copy is exact.
    const text = instance.ctx.typeof(described.value) === "string" ? instance.ctx.getString(described.value) : ""
    described.value.dispose()
    const { message, name, stack } = Either.getOrElse(decodeDescribed(text), () => ({ name: "", message: text, stack: "" }))
    if (name === "InternalError" && message === "out of memory") return this.stop(heapFull)
    if (name === "InternalError" && message === "stack overflow") {
      return this.stop(new SkillMemoryExceeded({ skill: instance.name, kind: "stack", limit: this.settings.stackBytes / 1024 }))
    }
    const location = this.locate(instance, stack)
    return {
      _tag: "Thrown",
      skill: instance.name,
      file: location.file,
      line: location.line,
      // The skill's own text, kept readable: it travels in reports, test results and the log.
      error: clip(name === "" ? `the value ${message}` : `${name}: ${message}`)
    }
  }

  private heapExceeded(instance: Instance): SkillMemoryExceeded {
    return new SkillMemoryExceeded({ skill: instance.name, kind: "heap", limit: this.settings.memoryMb })
  }

  /** The first stack frame in one of the instance's own files. */
  private locate(instance: Instance, stack: string): { readonly file: string; readonly line: number | null } {
    for (const frame of stack.split("\n")) {
      const match = /\(?([^\s()]+?):(\d+)(?::\d+)?\)?\s*$/.exec(frame)
      const file = match?.[1]
      if (file !== undefined && instance.sourceFiles.includes(file)) return { file, line: Number(match?.[2]) }
    }
    return { file: instance.skill.file, line: null }
  }

  // ---- JSON across the boundary ------------------------------------------------------------

  /** A guest value as JSON text (throws in the guest for cycles, BigInt, …). */
  toJson(instance: Instance, value: QuickJSHandle): Either.Either<string, Failure> {
    return this.callForString(instance, instance.bridge.toJson, [value])
  }

  /** JSON text as a new guest value; the handle is the caller's. */
  fromJson(instance: Instance, json: string): Either.Either<QuickJSHandle, Failure> {
    const text = instance.ctx.newString(json)
    const value = this.callIn(instance, instance.bridge.fromJson, [text])
    text.dispose()
    return value
  }

  functionNames(instance: Instance, exports: QuickJSHandle): Either.Either<ReadonlyArray<string>, Failure> {
    return Either.flatMap(this.callForString(instance, instance.bridge.functionNames, [exports]), (text) =>
      Either.mapLeft(decodeNames(text), () => new SandboxCrashed({ skill: instance.name, reason: "could not read the exported names" })))
  }

  /**
   * Calls `target[fn](...args)` in `instance`, awaits it and returns the result as JSON text,
   * bounded by the result limit.
   */
  invoke(instance: Instance, target: QuickJSHandle, fn: string, argsJson: string): Either.Either<string, Failure> {
    const name = instance.ctx.newString(fn)
    const args = instance.ctx.newString(argsJson)
    const called = this.callIn(instance, instance.bridge.invoke, [target, name, args])
    name.dispose()
    args.dispose()
    return called.pipe(
      Either.flatMap((value) => this.settle(instance, value, fn)),
      Either.flatMap((value) => {
        const json = this.toJson(instance, value)
        value.dispose()
        return Either.mapLeft(json, (failure) =>
          failure._tag === "Thrown" ? new ResultNotJson({ skill: instance.name, reason: failure.error }) : failure)
      }),
      Either.flatMap((json) => {
        if (json.length > this.settings.maxResultChars) {
          return Either.left(this.stop(new OutputTooLarge({ skill: instance.name, what: "result", size: json.length, limit: this.settings.maxResultChars })))
        }
        // A result is saved with the task and logged: deeper than the agent reads back, it would be lost.
        const deep = tooDeepIn(json)
        return deep === undefined ? Either.right(json) : Either.left(new ResultNotJson({ skill: instance.name, reason: deep }))
      })
    )
  }

  // ---- what a run does ----------------------------------------------------------------------

  /**
   * Loads the skill and calls one of its exported functions with the argument given as JSON
   * text; returns the result as JSON text, for the host to parse with `parseGuestJson`.
   */
  call(fn: string, argJson: string): Either.Either<string, SandboxError> {
    return this.guarded(() =>
      Either.flatMap(this.loadSkill(this.request.skill), (instance) => {
        const exports = instance.localModules.get(instance.name) ?? instance.ctx.undefined
        return Either.flatMap(this.functionNames(instance, exports), (names) =>
          names.includes(fn)
            ? this.invoke(instance, exports, fn, `[${argJson}]`)
            : Either.left(new FunctionNotExported({ skill: instance.name, function: fn, exported: names })))
      })
    )
  }

  /** Loads the skill and lists the functions it exports. */
  exportedFunctions(): Either.Either<ReadonlyArray<string>, SandboxError> {
    return this.guarded(() =>
      Either.flatMap(this.loadSkill(this.request.skill), (instance) =>
        this.functionNames(instance, instance.localModules.get(instance.name) ?? instance.ctx.undefined))
    )
  }

  /** Harness, skill and test file in one context; returns the hooks handle. */
  private loadTests(tests: TestSource): Either.Either<{ readonly instance: Instance; readonly hooks: QuickJSHandle }, Failure> {
    return Either.flatMap(this.createInstance(this.request.skill), (instance) => {
      instance.sourceFiles.push(tests.file)
      const harness = instance.ctx.evalCode(harnessSource, harnessFileName, { type: "global" })
      if (harness.error !== undefined) return Either.left(this.consumeThrown(instance, harness.error))
      const hooks = instance.own(harness.value)
      return this.evaluateModule(instance, this.request.skill).pipe(
        Either.flatMap((exports) => {
          instance.localModules.set(instance.name, instance.own(exports))
          return this.evaluateModule(instance, tests)
        }),
        Either.map((testExports) => {
          testExports.dispose()
          return { instance, hooks }
        })
      )
    })
  }

  private hook(instance: Instance, hooks: QuickJSHandle, name: "names" | "run"): QuickJSHandle {
    return instance.own(instance.ctx.getProp(hooks, name))
  }

  /** The names of the tests the test file registers. */
  testNames(tests: TestSource): Either.Either<ReadonlyArray<string>, SandboxError> {
    return this.guarded(() =>
      Either.flatMap(this.loadTests(tests), ({ hooks, instance }) =>
        Either.flatMap(this.callForString(instance, this.hook(instance, hooks, "names"), []), (text) =>
          Either.mapLeft(decodeTestNames(text), () =>
            new SandboxCrashed({ skill: instance.name, reason: "the test harness returned unreadable test names" }))))
    )
  }

  /** Runs the test at `index` in this run's fresh context. */
  runTest(tests: TestSource, index: number): Either.Either<TestOutcome, SandboxError> {
    return this.guarded(() =>
      Either.flatMap(this.loadTests(tests), ({ hooks, instance }) => {
        const position = instance.ctx.newNumber(index)
        const started = this.callIn(instance, this.hook(instance, hooks, "run"), [position])
        position.dispose()
        return started.pipe(
          Either.flatMap((promise) => this.settle(instance, promise, "the test")),
          Either.flatMap((value) => {
            const text = instance.ctx.typeof(value) === "string" ? this.readString(instance, value) : Either.right("")
            value.dispose()
            return Either.flatMap(text, (json) =>
              Either.mapLeft(decodeTestOutcome(json), () =>
                new SandboxCrashed({ skill: instance.name, reason: "the test harness returned an unreadable outcome" })))
          })
        )
      })
    )
  }

  /**
   * Maps thrown values to `SkillThrew` and host-level failures to a poisoned engine. A run
   * that broke a rule fails with that refusal even when the skill caught the exception and
   * returned before the interrupt handler stopped it.
   */
  private guarded<A>(body: () => Either.Either<A, Failure>): Either.Either<A, SandboxError> {
    try {
      const outcome = Either.mapLeft(body(), (failure) => (failure._tag === "Thrown" ? new SkillThrew(failure) : failure))
      return this.stopReason === undefined ? outcome : Either.left(this.stopReason)
    } catch (error) {
      this.engine.poisoned = true
      return Either.left(this.stop(this.hostFailure(this.request.skill.meta.name, error)))
    }
  }

  /** A host exception raised while the engine ran: a blown host stack, or an engine fault. */
  hostFailure(skill: string, error: unknown): SandboxError {
    if (isHostStackOverflow(error)) return new SkillMemoryExceeded({ skill, kind: "stack", limit: this.settings.stackBytes / 1024 })
    return new SandboxCrashed({ skill, reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
  }

  /** Closes files, disposes every VM and removes the command directory. */
  dispose(): void {
    for (const instance of this.instances.reverse()) {
      for (const file of instance.files.values()) {
        try {
          this.settings.host.close(file.fd)
        } catch {
          // Already closed by the OS; nothing is left to release.
        }
      }
      if (this.engine.poisoned) continue
      try {
        for (const handle of instance.owned) handle.dispose()
        instance.ctx.dispose()
        instance.rt.dispose()
      } catch {
        // A failed disposal leaves the engine in an unknown state: never reuse it.
        this.engine.poisoned = true
      }
    }
    if (this.execDir !== undefined) this.settings.host.removeDirectory(this.execDir)
  }
}
