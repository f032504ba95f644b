/**
 * The QuickJS engine behind `Sandbox`: one run = one `SandboxRun`, holding a fresh runtime +
 * context for the skill and one more for each dependency it `require`s (each with its own
 * declared paths). Everything here is synchronous because QuickJS host calls are.
 *
 * Limits, and why they are enforced the way they are:
 * - CPU: the interrupt handler stops the run at its deadline (shared by the skill, its
 *   dependencies, its promise jobs and its commands).
 * - Memory: the prebuilt engine's own accounting (`setMemoryLimit`) bounds single allocations
 *   only (quickjs-emscripten issues #255, #271), so each engine is given a WebAssembly memory
 *   whose maximum is the limit: once it is full, QuickJS fails its allocations with "out of
 *   memory". Runs are serialised per engine (`Sandbox.ts`), so the cap belongs to one run.
 * - Stack: `setMaxStackSize` catches ordinary recursion. Some native paths (deeply nested
 *   JSON, parser nesting) can exhaust the host's stack first; that surfaces as a host
 *   RangeError, after which the engine is poisoned and `Sandbox.ts` loads a fresh one.
 * Values cross the boundary as JSON text only; no handle to a host object ever enters.
 */
import { Either, Schema } from "effect"
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from "quickjs-emscripten"
import type { Json } from "../core/config.ts"
import { detectModuleForm, type SkillMetadata } from "../core/skillMeta.ts"
import { harnessFileName, harnessSource, TestNames, TestOutcome } from "../core/testHarness.ts"
import {
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
} from "./sandboxErrors.ts"
import type { SandboxHost } from "./sandboxFs.ts"
import { GuestError, installGlobals, moduleName, type OpenFile, parseGuestJson } from "./sandboxGlobals.ts"
import { makePathGuard, makeRunPaths, type PathGuard, type ProtectedPath, type RunMode, type RunPaths } from "./sandboxPaths.ts"

export interface SkillSource {
  readonly meta: SkillMetadata
  readonly file: string
  readonly code: string
}

export interface TestSource {
  readonly file: string
  readonly code: string
}

export interface RunRequest {
  readonly skill: SkillSource
  /** Every skill the run may `require`, transitively, resolved by the caller. */
  readonly dependencies: ReadonlyMap<string, SkillSource>
  readonly mode: RunMode
  /** The caller's approval for the `exec` capability (the skill must also declare it). */
  readonly grantExec: boolean
}

export interface RunSettings {
  readonly host: SandboxHost
  readonly timeoutSeconds: number
  readonly memoryMb: number
  readonly stackBytes: number
  readonly maxOutputChars: number
  readonly maxResultChars: number
  readonly maxHandles: number
  readonly allowedPaths: ReadonlyArray<string>
  readonly protectedPaths: ReadonlyArray<ProtectedPath>
}

export interface AuditEvent {
  readonly event: string
  readonly data: Readonly<Record<string, unknown>>
}

/** The part of `WebAssembly.Memory` used here; the project's `lib` carries no WebAssembly types. */
interface WasmMemory {
  readonly buffer: ArrayBuffer
}
const WasmMemory = (globalThis as unknown as {
  readonly WebAssembly: { readonly Memory: new(descriptor: { initial: number; maximum: number }) => WasmMemory }
}).WebAssembly.Memory

/** A QuickJS engine (a WebAssembly module) whose linear memory is capped. */
export interface Engine {
  readonly load: Promise<{ readonly newRuntime: () => QuickJSRuntime }>
  readonly memory: WasmMemory
  readonly maxBytes: number
  /** Set when a host-level failure left the module in an unknown state. */
  poisoned: boolean
}

const PAGE = 65536
/** Room for the engine itself (static data, C stack, runtime bookkeeping) below the skill's share. */
const ENGINE_BASE_BYTES = 16 * 1024 * 1024

export const makeEngine = (memoryMb: number): Engine => {
  const maxBytes = ENGINE_BASE_BYTES + memoryMb * 1024 * 1024
  const memory = new WasmMemory({ initial: ENGINE_BASE_BYTES / PAGE, maximum: maxBytes / PAGE })
  const emscriptenModule = {
    wasmMemory: memory,
    // Emscripten prints its aborts (e.g. a runtime that cannot be freed after a skill left
    // an endless promise chain); the abort itself reaches us as an exception and retires
    // the engine, so the printed copy is not for the user's terminal.
    printErr: () => undefined
  }
  // Imported on first use: commands that never run a skill do not pay for loading QuickJS.
  const load = import("quickjs-emscripten").then(({ newQuickJSWASMModule, newVariant, RELEASE_SYNC }) =>
    newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory, emscriptenModule }))
  )
  return { load, memory, maxBytes, poisoned: false }
}

/** The engine's memory reached its cap: allocations now fail. */
export const engineFull = (engine: Engine): boolean => engine.memory.buffer.byteLength >= engine.maxBytes

/** An exception the skill's code threw, read out of the VM. */
interface Thrown {
  readonly _tag: "Thrown"
  readonly skill: string
  readonly file: string
  readonly error: string
  readonly line: number | null
}

export type Failure = SandboxError | Thrown

const isHostStackOverflow = (error: unknown): boolean =>
  error instanceof RangeError && /call stack/i.test(error.message)


const Described = Schema.parseJson(Schema.Struct({ name: Schema.String, message: Schema.String, stack: Schema.String }))
const decodeDescribed = Schema.decodeUnknownEither(Described)
const decodeTestNames = Schema.decodeUnknownEither(Schema.parseJson(TestNames))
const decodeTestOutcome = Schema.decodeUnknownEither(Schema.parseJson(TestOutcome))
const decodeNames = Schema.decodeUnknownEither(Schema.parseJson(Schema.Array(Schema.String)))


// Evaluated first in every context, before any skill code, so it keeps the real built-ins.
const bridgeSource = `(() => {
  "use strict";
  const stringify = JSON.stringify, parse = JSON.parse, S = String, keysOf = Object.keys, apply = Reflect.apply;
  const printable = (value) => {
    if (typeof value === "string") return value;
    try { const text = stringify(value); return text === undefined ? S(value) : text; }
    catch (e) { try { return S(value); } catch (e2) { return "[unprintable value]"; } }
  };
  return {
    toJson: (value) => { const text = stringify(value); return text === undefined ? "null" : text; },
    fromJson: (text) => parse(text),
    format: printable,
    describe: (error) => {
      try {
        if (error !== null && typeof error === "object") {
          return stringify({ name: S(error.name), message: S(error.message), stack: typeof error.stack === "string" ? error.stack : "" });
        }
        return stringify({ name: "", message: printable(error), stack: "" });
      } catch (e) { return stringify({ name: "", message: "a value that could not be read", stack: "" }); }
    },
    functionNames: (object) => {
      const names = [];
      for (const key of keysOf(object)) if (typeof object[key] === "function") names[names.length] = key;
      return stringify(names);
    },
    invoke: (target, name, argsJson) => apply(target[name], target, parse(argsJson)),
    loadCommonJs: (factory, require) => {
      const module = { exports: {} };
      apply(factory, module.exports, [module, module.exports, require]);
      return module.exports;
    }
  };
})()`

const bridgeFunctions = ["toJson", "fromJson", "format", "describe", "functionNames", "invoke", "loadCommonJs"] as const
type Bridge = Record<(typeof bridgeFunctions)[number], QuickJSHandle>

/** One skill in its own runtime and context. */
export class Instance {
  readonly owned: Array<QuickJSHandle> = []
  readonly files = new Map<number, OpenFile>()
  readonly proxies = new Map<string, QuickJSHandle>()
  /** Modules served by name inside this context: the skill under test, for its test file. */
  readonly localModules = new Map<string, QuickJSHandle>()
  nextFileId = 1
  /** Files whose stack frames point at this skill's own code. */
  readonly sourceFiles: Array<string>
  requireFunction: QuickJSHandle | undefined
  /** The property key "length", made once: reading a string's length is on every host call. */
  readonly lengthKey: QuickJSHandle
  constructor(
    readonly skill: SkillSource,
    readonly rt: QuickJSRuntime,
    readonly ctx: QuickJSContext,
    readonly bridge: Bridge,
    readonly guard: PathGuard
  ) {
    this.sourceFiles = [skill.file]
    this.lengthKey = this.own(ctx.newString("length"))
  }
  get name(): string {
    return this.skill.meta.name
  }
  own(handle: QuickJSHandle): QuickJSHandle {
    this.owned.push(handle)
    return handle
  }
}

/** Captured `print`/`console` output, capped; the cap is reported at the end of the text. */
class OutputBuffer {
  private readonly parts: Array<string> = []
  private size = 0
  private truncated = false
  constructor(private readonly limit: number) {}
  append(line: string): void {
    if (this.truncated) return
    const room = this.limit - this.size
    if (line.length + 1 > room) {
      this.parts.push(line.slice(0, Math.max(0, room)))
      this.truncated = true
      return
    }
    this.parts.push(`${line}\n`)
    this.size += line.length + 1
  }
  text(): string {
    const text = this.parts.join("")
    return this.truncated ? `${text}\n[output truncated: the skill printed more than ${this.limit} characters]\n` : text
  }
}


const isIdentifier = (name: string): boolean => /^[A-Za-z_$][\w$]*$/.test(name) && name !== "default"

/** An ES module that re-exports a `require`d object, so `import { run } from "dep"` works. */
const reexportSource = (name: string, functions: ReadonlyArray<string>): string =>
  [
    `const m = require(${JSON.stringify(name)});`,
    "export default m;",
    ...functions.filter(isIdentifier).map((f) => `export const ${f} = m.${f};`)
  ].join("\n")

export class SandboxRun {
  readonly output: OutputBuffer
  readonly auditEvents: Array<AuditEvent> = []
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
    readonly settings: RunSettings
  ) {
    this.deadline = Date.now() + settings.timeoutSeconds * 1000
    this.output = new OutputBuffer(settings.maxOutputChars)
    this.paths = makeRunPaths({
      host: settings.host,
      allowedPaths: settings.allowedPaths,
      protectedPaths: settings.protectedPaths,
      mode: request.mode
    })
  }

  audit(event: string, data: Readonly<Record<string, unknown>>): void {
    this.auditEvents.push({ event, data })
  }

  get stopped(): SandboxError | undefined {
    return this.stopReason
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

  private shouldInterrupt(skill: string): boolean {
    if (this.stopReason !== undefined) return true
    if (Date.now() <= this.deadline) return false
    this.stop(new SkillTimeout({ skill, seconds: this.settings.timeoutSeconds }))
    return true
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
    rt.setInterruptHandler(() => this.shouldInterrupt(skill.meta.name))
    const ctx = rt.newContext()
    const bridgeObject = ctx.evalCode(bridgeSource, "luallm:bridge", { type: "global" })
    if (bridgeObject.error !== undefined) {
      bridgeObject.error.dispose()
      ctx.dispose()
      rt.dispose()
      return Either.left(new SandboxCrashed({ skill: skill.meta.name, reason: "the sandbox bridge did not evaluate" }))
    }
    const get = (name: (typeof bridgeFunctions)[number]) => ctx.getProp(bridgeObject.value, name)
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
  refuseDependency(instance: Instance, requested: string): GuestError {
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
    return Either.map(this.toJson(instance, handle), (json) => JSON.parse(json) as string)
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
      const stop = this.stopReason ?? (this.shouldInterrupt(instance.name) ? this.stopReason : undefined)
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
    if (this.stopReason !== undefined) return this.stopReason
    if (this.shouldInterrupt(instance.name) && this.stopReason !== undefined) return this.stopReason
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
      error: name === "" ? `the value ${message}` : `${name}: ${message}`
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
      Either.flatMap((json) =>
        json.length > this.settings.maxResultChars
          ? Either.left(this.stop(new OutputTooLarge({ skill: instance.name, what: "result", size: json.length, limit: this.settings.maxResultChars })))
          : Either.right(json)
      )
    )
  }

  // ---- what a run does ----------------------------------------------------------------------

  /** Loads the skill and calls one of its exported functions with `args`. */
  call(fn: string, args: Json): Either.Either<Json, SandboxError> {
    return this.guarded(() =>
      Either.flatMap(this.loadSkill(this.request.skill), (instance) => {
        const exports = instance.localModules.get(instance.name) ?? instance.ctx.undefined
        return this.functionNames(instance, exports).pipe(
          Either.flatMap((names) =>
            names.includes(fn)
              ? this.invoke(instance, exports, fn, JSON.stringify([args]))
              : Either.left(new FunctionNotExported({ skill: instance.name, function: fn, exported: names }))
          ),
          Either.map(parseGuestJson)
        )
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
