/**
 * The host functions a skill sees: `fs`, `require`, `print`/`console`, `log` and `exec`.
 * Each checks every argument it is given (types, sizes, paths) before touching anything,
 * returns only fresh guest values (strings, numbers, JSON-decoded data), and reports:
 * - a bad argument or an ordinary I/O error (ENOENT, …) as an exception the skill may catch;
 * - a violation (path, dependency, capability, command, handles, time) by stopping the run
 *   with its tagged error: the skill gets an exception too, but cannot catch its way past it.
 */
import { tooDeepIn } from "../../core/jsonText.ts"
import { Either, Schema } from "effect"
import type { QuickJSHandle, VmCallResult } from "quickjs-emscripten"
import type { Json } from "../../core/config.ts"
import {
  CapabilityDenied,
  CommandNotAllowed,
  type SandboxError,
  SkillThrew,
  SkillTimeout,
  TooManyHandles,
  UndeclaredDependency
} from "./errors.ts"
import { parseCommand } from "./execPolicy.ts"
import { makeFileAccess } from "./fileAccess.ts"
import type { Granted } from "./paths.ts"
import type { Failure, Instance, OpenFile, RunScope } from "./instance.ts"

/** An error the skill's code sees as an ordinary exception. */
export class GuestError extends Error {
  constructor(readonly errorName: string, message: string) {
    super(message)
  }
}

/**
 * Parses JSON that came out of a sandbox. `__proto__` keys are dropped so that no later
 * merge or assignment on the host can turn them into a prototype change.
 */
export const parseGuestJson = (text: string): Json =>
  text.includes("\"__proto__\"")
    ? JSON.parse(text, (key, value: Json) => (key === "__proto__" ? undefined : value))
    : JSON.parse(text)

/** `require("./x.js")` and `require("x")` name the same skill. */
export const moduleName = (requested: string): string => /^(?:\.\/)?([a-z][a-z0-9_]*)(?:\.js)?$/.exec(requested)?.[1] ?? requested

/** Thrown inside a host function: stop the run with this error. */
class Refusal extends Error {
  constructor(readonly error: SandboxError) {
    super(error.message)
  }
}

const MAX_PATH = 4096
const MAX_READ_CHUNK = 1024 * 1024
const MAX_LOG_DATA = 65536
const MAX_EXEC_OUTPUT = 1024 * 1024
const MAX_EXEC_ARGS = 256

type HostImpl = (args: ReadonlyArray<QuickJSHandle>) => QuickJSHandle | undefined

const isErrno = (error: unknown): error is Error & { readonly code: string } =>
  error instanceof Error && "code" in error && typeof error.code === "string"

const toSandboxError = (failure: Failure): SandboxError => (failure._tag === "Thrown" ? new SkillThrew(failure) : failure)

/** Unwraps a failure inside a host function: a guest exception or a run-stopping refusal. */
const orThrow = <A>(result: Either.Either<A, Failure>, guest: (error: string) => GuestError): A =>
  Either.getOrThrowWith(result, (failure) => (failure._tag === "Thrown" ? guest(failure.error) : new Refusal(failure)))

const ExecArgs = Schema.Array(Schema.String).pipe(Schema.maxItems(MAX_EXEC_ARGS))
const decodeExecArgs = Schema.decodeUnknownEither(ExecArgs)

export const installGlobals = (run: RunScope, instance: Instance): void => {
  const { ctx, guard } = instance
  const host = run.settings.host
  const skill = instance.name

  const guestError = (name: string, message: string) => ctx.newError({ name, message })

  const callHost = (operation: string, impl: HostImpl, args: ReadonlyArray<QuickJSHandle>): VmCallResult<QuickJSHandle> | QuickJSHandle | undefined => {
    const stopped = run.stopped
    if (stopped !== undefined) return { error: guestError("Error", stopped.message) }
    try {
      return impl(args)
    } catch (error) {
      if (error instanceof GuestError) return { error: guestError(error.errorName, error.message) }
      if (isErrno(error)) return { error: guestError("Error", `${operation}: ${error.message.split(",")[0] ?? error.code}`) }
      const stop = run.stop(error instanceof Refusal ? error.error : run.hostFailure(skill, error))
      return { error: guestError("Error", stop.message) }
    }
  }

  const define = (target: QuickJSHandle, name: string, operation: string, impl: HostImpl): QuickJSHandle => {
    const fn = ctx.newFunction(name, (...args) => callHost(operation, impl, args))
    ctx.setProp(target, name, fn)
    return fn
  }

  const defineAll = (target: QuickJSHandle, prefix: string, functions: Record<string, HostImpl>): void => {
    for (const [name, impl] of Object.entries(functions)) define(target, name, `${prefix}${name}`, impl).dispose()
  }

  const stringArg = (handle: QuickJSHandle | undefined, operation: string, what: string): string => {
    if (handle === undefined || ctx.typeof(handle) !== "string") {
      throw new GuestError("TypeError", `${operation}: ${what} must be a string, got ${handle === undefined ? "nothing" : ctx.typeof(handle)}`)
    }
    return orThrow(run.readString(instance, handle), (error) => new GuestError("Error", error))
  }

  const newString = (text: string): QuickJSHandle => orThrow(run.newString(instance, text), (error) => new GuestError("Error", error))

  const pathArg = (handle: QuickJSHandle | undefined, operation: string): string => {
    const path = stringArg(handle, operation, "the path")
    if (path === "" || path.length > MAX_PATH || path.includes("\u0000")) {
      throw new GuestError("TypeError", `${operation}: the path must be 1 to ${MAX_PATH} characters without NUL`)
    }
    return path
  }

  const integerArg = (handle: QuickJSHandle | undefined, operation: string, what: string, fallback?: number): number => {
    if (handle === undefined || ctx.typeof(handle) === "undefined") {
      if (fallback !== undefined) return fallback
    } else if (ctx.typeof(handle) === "number") {
      const value = ctx.getNumber(handle)
      if (Number.isSafeInteger(value) && value > 0) return value
    }
    throw new GuestError("TypeError", `${operation}: ${what} must be a positive integer`)
  }

  const files = makeFileAccess(guard, skill)

  /** A refusal stops the run; the value is what the check let through. */
  const allowed = <A>(result: Either.Either<A, SandboxError>): A => Either.getOrThrowWith(result, (error) => new Refusal(error))

  const record = (op: string, granted: Granted, extra: Readonly<Record<string, unknown>> = {}) =>
    run.audit("sandbox.fs", {
      skill,
      op,
      path: granted.resolved,
      ...(granted.target === granted.resolved ? {} : { scratch: granted.target }),
      ...extra
    })

  /** `fs.writeFile` and `fs.appendFile`: the same checks, the same audit record, one flag apart. */
  const writeTo = (operation: "writeFile" | "appendFile", append: boolean): HostImpl => ([path, data]) => {
    const requested = pathArg(path, `fs.${operation}`)
    const text = stringArg(data, `fs.${operation}`, "the data")
    const { bytes, granted } = allowed(files.writeFile(`fs.${operation}`, requested, text, append))
    record(operation, granted, { bytes })
    return undefined
  }

  const json = (value: unknown): QuickJSHandle =>
    orThrow(run.fromJson(instance, JSON.stringify(value)), (error) => new GuestError("Error", error))

  const maxReadBytes = (run.settings.memoryMb * 1024 * 1024) / 2

  const fileOf = (handle: QuickJSHandle | undefined, operation: string): [number, OpenFile] => {
    const id = integerArg(handle, operation, "the handle")
    const file = instance.files.get(id)
    if (file === undefined) throw new GuestError("TypeError", `${operation}: ${id} is not an open file handle`)
    return [id, file]
  }

  const fsObject = ctx.newObject()
  defineAll(fsObject, "fs.", {
    readFile: ([path]) => {
      const requested = pathArg(path, "fs.readFile")
      const read = allowed(files.readFile(requested, maxReadBytes))
      if (read._tag === "TooLarge") {
        throw new GuestError("RangeError", `fs.readFile("${requested}"): the file has ${read.bytes} bytes, more than the ${maxReadBytes} a skill may read at once; read it in pieces with fs.open and fs.read`)
      }
      record("readFile", read.granted, { bytes: read.bytes })
      return newString(read.text)
    },
    writeFile: writeTo("writeFile", false),
    appendFile: writeTo("appendFile", true),
    exists: ([path]) => {
      const { found, granted } = allowed(files.exists(pathArg(path, "fs.exists")))
      record("exists", granted)
      return found ? ctx.true : ctx.false
    },
    listDir: ([path]) => {
      const { entries, granted } = allowed(files.listDir(pathArg(path, "fs.listDir")))
      record("listDir", granted)
      return json(entries)
    },
    mkdir: ([path]) => {
      record("mkdir", allowed(files.mkdir(pathArg(path, "fs.mkdir"))))
      return undefined
    },
    open: ([path, flagsHandle]) => {
      const requested = pathArg(path, "fs.open")
      const flags = flagsHandle === undefined || ctx.typeof(flagsHandle) === "undefined" ? "r" : stringArg(flagsHandle, "fs.open", "flags")
      if (flags !== "r" && flags !== "w" && flags !== "a") throw new GuestError("TypeError", `fs.open: flags must be "r", "w" or "a", got "${flags}"`)
      if (instance.files.size >= run.settings.maxHandles) throw new Refusal(new TooManyHandles({ skill, limit: run.settings.maxHandles, path: requested }))
      const { fd, granted } = allowed(files.open(requested, flags))
      const id = instance.nextFileId++
      instance.files.set(id, { fd, requested, resolved: granted.resolved, flags, decoder: new TextDecoder() })
      record("open", granted, { flags })
      return ctx.newNumber(id)
    },
    read: ([handle, max]) => {
      const [, file] = fileOf(handle, "fs.read")
      if (file.flags !== "r") throw new GuestError("TypeError", `fs.read: "${file.requested}" was opened for writing`)
      const bytes = host.read(file.fd, Math.min(integerArg(max, "fs.read", "the byte count", 65536), MAX_READ_CHUNK))
      const text = bytes.length === 0 ? file.decoder.decode() : file.decoder.decode(bytes, { stream: true })
      run.audit("sandbox.fs", { skill, op: "read", path: file.resolved, bytes: bytes.length })
      return bytes.length === 0 && text === "" ? ctx.null : newString(text)
    },
    write: ([handle, data]) => {
      const [, file] = fileOf(handle, "fs.write")
      if (file.flags === "r") throw new GuestError("TypeError", `fs.write: "${file.requested}" was opened for reading`)
      const text = stringArg(data, "fs.write", "the data")
      allowed(files.spend("fs.write", file.requested, Buffer.byteLength(text, "utf8")))
      const written = host.write(file.fd, text)
      run.audit("sandbox.fs", { skill, op: "write", path: file.resolved, bytes: written })
      return ctx.newNumber(written)
    },
    close: ([handle]) => {
      const [id, file] = fileOf(handle, "fs.close")
      instance.files.delete(id)
      host.close(file.fd)
      return undefined
    }
  })
  ctx.setProp(ctx.global, "fs", fsObject)
  fsObject.dispose()

  const print = define(ctx.global, "print", "print", (args) => {
    const parts = args.map((arg) =>
      Either.getOrElse(
        ctx.typeof(arg) === "string" ? run.readString(instance, arg) : run.callForString(instance, instance.bridge.format, [arg]),
        () => "[unprintable value]"
      )
    )
    run.output.append(parts.join(" "))
    return undefined
  })
  const consoleObject = ctx.newObject()
  for (const level of ["log", "info", "warn", "error", "debug"]) ctx.setProp(consoleObject, level, print)
  ctx.setProp(ctx.global, "console", consoleObject)
  consoleObject.dispose()
  print.dispose()

  define(ctx.global, "log", "log", ([event, data]) => {
    const name = stringArg(event, "log", "the event name")
    if (name.length === 0 || name.length > 200) throw new GuestError("TypeError", "log: the event name must be 1 to 200 characters")
    const dataJson = data === undefined ? "{}" : orThrow(run.toJson(instance, data), (error) => new GuestError("TypeError", `log: the data must be JSON (${error})`))
    if (dataJson.length > MAX_LOG_DATA) {
      throw new GuestError("RangeError", `log: the data is ${dataJson.length} characters of JSON, more than the ${MAX_LOG_DATA} allowed`)
    }
    const deep = tooDeepIn(dataJson)
    if (deep !== undefined) throw new GuestError("TypeError", `log: the data must be JSON the agent accepts (${deep})`)
    run.audit("skill.log", { skill, event: name, data: parseGuestJson(dataJson) })
    return undefined
  }).dispose()

  const dependencyProxy = (name: string): QuickJSHandle => {
    const existing = instance.proxies.get(name)
    if (existing !== undefined) return existing
    const dependency = Either.getOrThrowWith(run.dependencyInstance(name), (failure) => new Refusal(toSandboxError(failure)))
    const exports = dependency.localModules.get(name) ?? dependency.ctx.undefined
    const proxy = instance.own(ctx.newObject())
    for (const fn of dependency.skill.meta.public_functions) {
      define(proxy, fn, `${name}.${fn}`, (args) => {
        const parts = args.map((arg) =>
          orThrow(run.toJson(instance, arg), (error) => new GuestError("TypeError", `${name}.${fn}: arguments must be JSON data (${error})`))
        )
        const result = orThrow(run.invoke(dependency, exports, fn, `[${parts.join(",")}]`), (error) => new GuestError("Error", `${name}.${fn} threw ${error}`))
        return orThrow(run.fromJson(instance, result), (error) => new GuestError("Error", error))
      }).dispose()
    }
    instance.proxies.set(name, proxy)
    return proxy
  }

  instance.requireFunction = instance.own(
    define(ctx.global, "require", "require", ([nameHandle]) => {
      const requested = stringArg(nameHandle, "require", "the module name")
      const name = moduleName(requested)
      const local = instance.localModules.get(name)
      if (local !== undefined) return local.dup()
      if (!instance.skill.meta.dependencies.includes(name) || !run.request.dependencies.has(name)) {
        throw new Refusal(new UndeclaredDependency({ skill, requested, declared: instance.skill.meta.dependencies }))
      }
      return dependencyProxy(name).dup()
    })
  )

  define(ctx.global, "exec", "exec", ([commandHandle, argsHandle]) => {
    if (!instance.skill.meta.capabilities.includes("exec")) throw new Refusal(new CapabilityDenied({ skill, capability: "exec", reason: "not_declared" }))
    if (run.request.mode._tag === "Draft") throw new Refusal(new CapabilityDenied({ skill, capability: "exec", reason: "draft" }))
    if (!run.request.grantExec) throw new Refusal(new CapabilityDenied({ skill, capability: "exec", reason: "not_granted" }))
    const command = stringArg(commandHandle, "exec", "the command")
    const argsJson = argsHandle === undefined ? "[]" : orThrow(run.toJson(instance, argsHandle), (error) => new GuestError("TypeError", `exec: ${error}`))
    const argv = Either.getOrThrowWith(
      decodeExecArgs(parseGuestJson(argsJson)),
      () => new GuestError("TypeError", `exec: the arguments must be an array of at most ${MAX_EXEC_ARGS} strings`)
    )
    if (argv.some((arg) => arg.includes("\u0000"))) throw new GuestError("TypeError", "exec: arguments may not contain NUL")
    const parsed = Either.getOrThrowWith(parseCommand(command, argv), (reason) => new Refusal(new CommandNotAllowed({ skill, command, reason })))
    const resolvedArgv = parsed.words.map((word) => allowed(files.execWord(`exec ${command}`, word, parsed.recursion)))
    if (!host.boundsCommands) {
      throw new Refusal(new CommandNotAllowed({ skill, command, reason: "this host cannot bound a command's memory (prlimit, from util-linux, is not installed); install util-linux" }))
    }
    const timeoutMs = run.remainingMs()
    if (timeoutMs === 0) throw new Refusal(new SkillTimeout({ skill, seconds: run.settings.timeoutSeconds }))
    const result = host.spawn(command, resolvedArgv, {
      dir: run.commandDirectory(),
      timeoutMs,
      maxBytes: MAX_EXEC_OUTPUT,
      // The same bound as the skill's own memory; sort's temporary files as large as one run may write.
      memoryBytes: run.settings.memoryMb * 1024 * 1024,
      fileBytes: run.settings.maxWriteBytes
    })
    run.audit("sandbox.exec", { skill, command, args: resolvedArgv, code: result.code, stdout_bytes: result.stdout.length, truncated: result.truncated })
    if (result.timedOut) throw new Refusal(new SkillTimeout({ skill, seconds: run.settings.timeoutSeconds }))
    return json({ stdout: result.stdout, stderr: result.stderr, code: result.code, truncated: result.truncated })
  }).dispose()
}
