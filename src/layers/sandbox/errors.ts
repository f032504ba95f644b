/**
 * Everything the sandbox refuses or stops, as tagged errors. Each message says what was
 * refused, why, and what to do; `Sandbox.ts` re-exports them.
 */
import { Data } from "effect"

/** Why a path was refused, in the order the checks run. */
export type PathRefusal =
  | "parent_segment"
  | "system"
  | "protected"
  | "not_declared"
  | "not_allowed"
  | "symlink_escape"
  | "swapped"
  | "recursion_uncovered"
  | "recursion_protected"

export class PathNotAllowed extends Data.TaggedError("PathNotAllowed")<{
  readonly skill: string
  /** The operation that asked, e.g. `fs.readFile` or `exec cat`. */
  readonly operation: string
  readonly path: string
  /** After `~`, `..` and symlinks are resolved. */
  readonly resolved: string
  readonly reason: PathRefusal
  /** The declared paths or `allowed_paths` that did not match, or the protected or system directory. */
  readonly rule: ReadonlyArray<string>
}> {
  override get message() {
    const where = `${this.operation}("${this.path}") by skill ${this.skill}`
    const globs = this.rule.length === 0 ? "(none)" : this.rule.join(", ")
    switch (this.reason) {
      case "parent_segment":
        return `Refused ${where}: the path contains "..". Skills must name paths directly; write the path without "..".`
      case "system":
        return `Refused ${where}: ${this.resolved} is inside ${globs}, the system's live state and devices (it holds the agent's own environment and its secrets), which no skill may read or write whatever allowed_paths says. Read and write regular files elsewhere.`
      case "protected":
        return `Refused ${where}: ${this.resolved} is inside ${globs}, one of luallm-agent's trust roots (its config files, skills, drafts, state, audit log, package and luallm's files): no skill may change it whatever allowed_paths says, config files may not even be read (they can hold llm.api_key) and drafts may not even read skills.allowed_dir. Point the skill at a path under allowed_paths outside these.`
      case "not_declared":
        return `Refused ${where}: ${this.resolved} is not among the paths the skill declares (${globs}). Add a matching glob to the skill's "paths" (a changed skill needs approval again).`
      case "not_allowed":
        return `Refused ${where}: ${this.resolved} is outside allowed_paths (${globs}). Add a matching glob to allowed_paths in the config if the skill should reach it.`
      case "symlink_escape":
        return `Refused ${where}: the path is a symlink (or goes through one) to ${this.resolved}, outside the declared and allowed paths (${globs}). Point the skill at the real location, if that location is meant to be allowed.`
      case "swapped":
        return `Refused ${where}: the file it opened turned out to be ${this.resolved}, outside the declared and allowed paths (${globs}): a directory on the path was replaced by a symlink while the skill ran. Nothing was read or written there. Check what changes that directory, and keep such directories out of allowed_paths.`
      case "recursion_uncovered":
        return `Refused ${where}: it would read everything below ${this.resolved}, and not all of that is inside both the skill's paths and allowed_paths (${globs}). A recursive command needs its directory under a dir/** glob of both. Point it at such a directory, or name the files instead.`
      case "recursion_protected":
        return `Refused ${where}: it would read everything below ${this.resolved}, which holds ${globs}, which no skill may read. Point it at a directory that does not hold it, or name the files instead.`
    }
  }
}

export class UndeclaredDependency extends Data.TaggedError("UndeclaredDependency")<{
  readonly skill: string
  /** What the code asked for (`require("fs")`, `import "./x.js"`). */
  readonly requested: string
  readonly declared: ReadonlyArray<string>
}> {
  override get message() {
    const declared = this.declared.length === 0 ? "none" : this.declared.join(", ")
    return `Refused require/import of "${this.requested}" by skill ${this.skill}: only the skill's declared dependencies (${declared}) can be loaded, by name. Host modules (fs, child_process, …) are never available; use the injected fs global, or declare the skill in "dependencies".`
  }
}

export class SkillTimeout extends Data.TaggedError("SkillTimeout")<{
  readonly skill: string
  readonly seconds: number
}> {
  override get message() {
    return `Stopped skill ${this.skill}: it ran longer than ${this.seconds} s (an endless loop, a promise chain that never ends, or a slow command). Fix the skill, or raise limits.skill_timeout_seconds if the work is genuinely long.`
  }
}

export class SkillMemoryExceeded extends Data.TaggedError("SkillMemoryExceeded")<{
  readonly skill: string
  readonly kind: "heap" | "stack"
  /** For "heap": limits.skill_memory_mb; for "stack": the stack limit in KiB. */
  readonly limit: number
}> {
  override get message() {
    return this.kind === "heap"
      ? `Stopped skill ${this.skill}: it used more than ${this.limit} MB of memory. Process the data in smaller pieces, or raise limits.skill_memory_mb.`
      : `Stopped skill ${this.skill}: it recursed or nested data deeper than the sandbox's ${this.limit} KiB stack allows. Use a loop instead of deep recursion, or flatten the data.`
  }
}

export class TooManyHandles extends Data.TaggedError("TooManyHandles")<{
  readonly skill: string
  readonly limit: number
  readonly path: string
}> {
  override get message() {
    return `Refused fs.open("${this.path}") by skill ${this.skill}: it already holds ${this.limit} open files, the most a skill may hold. Close files with fs.close(handle) when done with them.`
  }
}

export class SkillThrew extends Data.TaggedError("SkillThrew")<{
  readonly skill: string
  /** The file the error points at (the skill, or its test file). */
  readonly file: string
  /** The skill's own message, e.g. "TypeError: x is undefined". */
  readonly error: string
  readonly line: number | null
}> {
  override get message() {
    const where = this.line === null ? this.file : `${this.file}:${this.line}`
    return `Skill ${this.skill} threw ${this.error} (${where}). Fix the skill, or check the arguments it was given.`
  }
}

export class CapabilityDenied extends Data.TaggedError("CapabilityDenied")<{
  readonly skill: string
  readonly capability: string
  readonly reason: "not_declared" | "not_granted" | "draft"
}> {
  override get message() {
    switch (this.reason) {
      case "not_declared":
        return `Refused ${this.capability} by skill ${this.skill}: the skill does not declare "capabilities": ["${this.capability}"] in its metadata. Add it to the skill's header if the skill needs it (a changed skill needs approval again).`
      case "not_granted":
        return `Refused ${this.capability} by skill ${this.skill}: the approval tier (approval_tiers.skill_${this.capability}) did not grant it for this run. Approve it (e.g. skills run --allow-exec) or set the tier to "auto".`
      case "draft":
        return `Refused ${this.capability} by skill ${this.skill}: a draft that no human has approved may not run commands. Approve the skill first.`
    }
  }
}

/** What a path turned out to be, when it is neither a regular file nor (where one is wanted) a directory. */
export type SpecialKind = "directory" | "FIFO" | "socket" | "character device" | "block device" | "symlink" | "special file"

export class NotARegularFile extends Data.TaggedError("NotARegularFile")<{
  readonly skill: string
  readonly operation: string
  readonly path: string
  readonly resolved: string
  readonly kind: SpecialKind
}> {
  override get message() {
    return `Refused ${this.operation}("${this.path}") by skill ${this.skill}: ${this.resolved} is a ${this.kind}, and skills read and write regular files only (and list directories): a FIFO, socket or device could block the run or reach the system. Point the skill at a regular file.`
  }
}

export class WriteLimitExceeded extends Data.TaggedError("WriteLimitExceeded")<{
  readonly skill: string
  readonly operation: string
  readonly path: string
  /** Bytes the run would have written with this call (a draft's append counts the copy of the original). */
  readonly attempted: number
  readonly limit: number
}> {
  override get message() {
    return `Stopped skill ${this.skill} at ${this.operation}("${this.path}"): it would bring the bytes the run writes to ${this.attempted}, more than the ${this.limit} one run may write (a draft's append first copies the original file into its scratch directory, and that counts). Write less, or split the work into several runs.`
  }
}

export class CommandNotAllowed extends Data.TaggedError("CommandNotAllowed")<{
  readonly skill: string
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `Refused exec("${this.command}") by skill ${this.skill}: ${this.reason}. The whitelist is fixed: change the skill to do this another way.`
  }
}

export class OutputTooLarge extends Data.TaggedError("OutputTooLarge")<{
  readonly skill: string
  /** "result" or "log data". */
  readonly what: string
  readonly size: number
  readonly limit: number
}> {
  override get message() {
    return `Refused the ${this.what} of skill ${this.skill}: ${this.size} characters of JSON, more than the ${this.limit} allowed. Return a summary, or write large data to a file the skill declares.`
  }
}

export class ResultNotJson extends Data.TaggedError("ResultNotJson")<{
  readonly skill: string
  readonly reason: string
}> {
  override get message() {
    return `Skill ${this.skill} returned a value that is not JSON (${this.reason}). Return plain data: objects, arrays, strings, numbers, booleans and null.`
  }
}

export class FunctionNotExported extends Data.TaggedError("FunctionNotExported")<{
  readonly skill: string
  readonly function: string
  readonly exported: ReadonlyArray<string>
}> {
  override get message() {
    const exported = this.exported.length === 0 ? "nothing" : this.exported.join(", ")
    return `Skill ${this.skill} does not export a function ${this.function} (it exports ${exported}). Export it: \`export function ${this.function}(args) {…}\` or \`module.exports = { ${this.function} }\`.`
  }
}

export class SkillStalled extends Data.TaggedError("SkillStalled")<{
  readonly skill: string
  readonly function: string
}> {
  override get message() {
    return `Skill ${this.skill}: ${this.function} returned a promise that can never settle (nothing in the sandbox is left to resolve it: there are no timers or asynchronous host calls). Make sure every promise the skill awaits is resolved.`
  }
}

export class SandboxCrashed extends Data.TaggedError("SandboxCrashed")<{
  readonly skill: string
  readonly reason: string
}> {
  override get message() {
    return `The sandbox engine failed while running skill ${this.skill}: ${this.reason}. The engine was discarded and the next run starts a fresh one; if it happens again with this skill, report it with the skill file.`
  }
}

export type SandboxError =
  | PathNotAllowed
  | UndeclaredDependency
  | SkillTimeout
  | SkillMemoryExceeded
  | TooManyHandles
  | SkillThrew
  | CapabilityDenied
  | CommandNotAllowed
  | NotARegularFile
  | WriteLimitExceeded
  | OutputTooLarge
  | ResultNotJson
  | FunctionNotExported
  | SkillStalled
  | SandboxCrashed
