/**
 * What one sandboxed run is made of: the request, the limits, and one `Instance` (a runtime +
 * context with the bridge, the host functions and the skill's modules) per skill it loads;
 * and `RunScope`, the part of the run the host functions (`globals.ts`) use, which the run
 * (`run.ts`) implements — so the host functions depend on this file, never on the run.
 */
import type { Either } from "effect"
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from "quickjs-emscripten"
import type { SkillMetadata } from "../../core/skillMeta.ts"
import type { SandboxError } from "./errors.ts"
import type { SandboxHost } from "./host.ts"
import type { PathGuard, ProtectedPath, RunMode } from "./paths.ts"

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
  readonly maxWriteBytes: number
  readonly allowedPaths: ReadonlyArray<string>
  readonly protectedPaths: ReadonlyArray<ProtectedPath>
}

/** An exception the skill's code threw, read out of the VM. */
export interface Thrown {
  readonly _tag: "Thrown"
  readonly skill: string
  readonly file: string
  readonly error: string
  readonly line: number | null
}

export type Failure = SandboxError | Thrown

// Evaluated first in every context, before any skill code, so it keeps the real built-ins.
export const bridgeSource = `(() => {
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

/** Handles to the bridge's functions, kept by the host for the life of the instance. */
export type Bridge = Record<"toJson" | "fromJson" | "format" | "describe" | "functionNames" | "invoke" | "loadCommonJs", QuickJSHandle>

/** A file a skill opened with `fs.open`, by the handle number the skill holds. */
export interface OpenFile {
  readonly fd: number
  readonly requested: string
  readonly resolved: string
  readonly flags: "r" | "w" | "a"
  readonly decoder: InstanceType<typeof TextDecoder>
}

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
export class OutputBuffer {
  private readonly parts: Array<string> = []
  private size = 0
  private truncated = false
  /** `what` names the source in the closing note: "the skill printed", "the tests printed". */
  constructor(private readonly limit: number, private readonly what: string = "the skill printed") {}
  /** Adds `line` and a line break. */
  append(line: string): void {
    this.add(`${line}\n`)
  }
  /** Adds `text` as it is. */
  add(text: string): void {
    if (this.truncated) return
    const room = this.limit - this.size
    if (text.length > room) {
      this.parts.push(text.slice(0, Math.max(0, room)))
      this.truncated = true
      return
    }
    this.parts.push(text)
    this.size += text.length
  }
  text(): string {
    const text = this.parts.join("")
    return this.truncated ? `${text}\n[output truncated: ${this.what} more than ${this.limit} characters]\n` : text
  }
}

/**
 * What the host functions need from the run they serve: its request and limits, its stop
 * reason, its audit and output, and the value crossings in and out of a VM. Implemented by
 * `SandboxRun` (`run.ts`).
 */
export interface RunScope {
  readonly request: RunRequest
  readonly settings: RunSettings
  readonly output: OutputBuffer
  /** The error that ends the run, once there is one (passing the deadline is one). */
  readonly stopped: SandboxError | undefined
  /** Records the error that ends the run; the first one wins and is returned. */
  readonly stop: (error: SandboxError) => SandboxError
  readonly audit: (event: string, data: Readonly<Record<string, unknown>>) => void
  /** Milliseconds left before the deadline. */
  readonly remainingMs: () => number
  /** An empty directory commands run in, made on first use and removed with the run. */
  readonly commandDirectory: () => string
  /** A host exception raised while the engine ran, as the error that ends the run. */
  readonly hostFailure: (skill: string, error: unknown) => SandboxError
  readonly readString: (instance: Instance, handle: QuickJSHandle) => Either.Either<string, Failure>
  readonly newString: (instance: Instance, text: string) => Either.Either<QuickJSHandle, Failure>
  readonly callForString: (instance: Instance, fn: QuickJSHandle, args: ReadonlyArray<QuickJSHandle>) => Either.Either<string, Failure>
  readonly toJson: (instance: Instance, value: QuickJSHandle) => Either.Either<string, Failure>
  readonly fromJson: (instance: Instance, json: string) => Either.Either<QuickJSHandle, Failure>
  readonly invoke: (instance: Instance, target: QuickJSHandle, fn: string, argsJson: string) => Either.Either<string, Failure>
  /** The sandbox of a dependency, created on first `require`. */
  readonly dependencyInstance: (name: string) => Either.Either<Instance, Failure>
}

const isIdentifier = (name: string): boolean => /^[A-Za-z_$][\w$]*$/.test(name) && name !== "default"

/** An ES module that re-exports a `require`d object, so `import { run } from "dep"` works. */
export const reexportSource = (name: string, functions: ReadonlyArray<string>): string =>
  [
    `const m = require(${JSON.stringify(name)});`,
    "export default m;",
    ...functions.filter(isIdentifier).map((f) => `export const ${f} = m.${f};`)
  ].join("\n")
