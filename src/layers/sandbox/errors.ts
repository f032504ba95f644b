/**
 * Everything the sandbox refuses or stops, as tagged errors. Each message says what was
 * refused, why, and what to do; `Sandbox.ts` re-exports them.
 *
 * They are `Schema.TaggedError`s because they cross a thread boundary: a run happens in a
 * worker thread (`sandbox/worker.ts`), and the error it ends with comes back to the main
 * thread encoded by `SandboxErrorSchema` and is decoded into the same class, message included.
 */
import { Schema } from "effect"

/** Why a path was refused, in the order the checks run. */
export const PathRefusal = Schema.Literal(
  "parent_segment",
  "system",
  "protected",
  "not_declared",
  "not_allowed",
  "symlink_escape",
  "swapped",
  "recursion_uncovered",
  "recursion_protected"
)
export type PathRefusal = typeof PathRefusal.Type

const Strings = Schema.Array(Schema.String)

/** The most characters of one value a message shows. */
const SHOWN_CHARS = 1000

/**
 * A value the skill chose (a path, a module name, its exception's text), cut to a readable
 * length: messages end up in the audit log and the terminal, and a skill must not be able to
 * flood either by failing with a huge one.
 */
export const clip = (text: string, max: number = SHOWN_CHARS): string =>
  text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`

const list = (items: ReadonlyArray<string>, empty: string): string => (items.length === 0 ? empty : clip(items.join(", ")))

export class PathNotAllowed extends Schema.TaggedError<PathNotAllowed>()("PathNotAllowed", {
  skill: Schema.String,
  /** The operation that asked, e.g. `fs.readFile` or `exec cat`. */
  operation: Schema.String,
  path: Schema.String,
  /** After `~`, `..` and symlinks are resolved. */
  resolved: Schema.String,
  reason: PathRefusal,
  /** The declared paths or `allowed_paths` that did not match, or the protected or system directory. */
  rule: Strings
}) {
  override get message() {
    const where = `${clip(this.operation)}("${clip(this.path)}") by skill ${this.skill}`
    const globs = list(this.rule, "(none)")
    const resolved = clip(this.resolved)
    switch (this.reason) {
      case "parent_segment":
        return `Refused ${where}: the path contains "..". Skills must name paths directly; write the path without "..".`
      case "system":
        return `Refused ${where}: ${resolved} is inside ${globs}, the system's live state and devices (it holds the agent's own environment and its secrets), which no skill may read or write whatever allowed_paths says. Read and write regular files elsewhere.`
      case "protected":
        return `Refused ${where}: ${resolved} is inside ${globs}, one of luallm-agent's trust roots (its config files, skills, drafts, state, audit log, package and luallm's files): no skill may change it whatever allowed_paths says, config files may not even be read (they can hold llm.api_key) and drafts may not even read skills.allowed_dir. Point the skill at a path under allowed_paths outside these.`
      case "not_declared":
        return `Refused ${where}: ${resolved} is not among the paths the skill declares (${globs}). Add a matching glob to the skill's "paths" (a changed skill needs approval again).`
      case "not_allowed":
        return `Refused ${where}: ${resolved} is outside allowed_paths (${globs}). Add a matching glob to allowed_paths in the config if the skill should reach it.`
      case "symlink_escape":
        return `Refused ${where}: the path is a symlink (or goes through one) to ${resolved}, outside the declared and allowed paths (${globs}). Point the skill at the real location, if that location is meant to be allowed.`
      case "swapped":
        return `Refused ${where}: the file it opened turned out to be ${resolved}, outside the declared and allowed paths (${globs}): a directory on the path was replaced by a symlink while the skill ran. Nothing was read or written there. Check what changes that directory, and keep such directories out of allowed_paths.`
      case "recursion_uncovered":
        return `Refused ${where}: it would read everything below ${resolved}, and not all of that is inside both the skill's paths and allowed_paths (${globs}). A recursive command needs its directory under a dir/** glob of both. Point it at such a directory, or name the files instead.`
      case "recursion_protected":
        return `Refused ${where}: it would read everything below ${resolved}, which holds ${globs}, which no skill may read. Point it at a directory that does not hold it, or name the files instead.`
    }
  }
}

export class UndeclaredDependency extends Schema.TaggedError<UndeclaredDependency>()("UndeclaredDependency", {
  skill: Schema.String,
  /** What the code asked for (`require("fs")`, `import "./x.js"`). */
  requested: Schema.String,
  declared: Strings
}) {
  override get message() {
    const declared = list(this.declared, "none")
    return `Refused require/import of "${clip(this.requested)}" by skill ${this.skill}: only the skill's declared dependencies (${declared}) can be loaded, by name. Host modules (fs, child_process, …) are never available; use the injected fs global, or declare the skill in "dependencies".`
  }
}

export class SkillTimeout extends Schema.TaggedError<SkillTimeout>()("SkillTimeout", {
  skill: Schema.String,
  seconds: Schema.Number
}) {
  override get message() {
    return `Stopped skill ${this.skill}: it ran longer than ${this.seconds} s (an endless loop, a promise chain that never ends, or a slow command). Fix the skill, or raise limits.skill_timeout_seconds if the work is genuinely long.`
  }
}

export class SkillMemoryExceeded extends Schema.TaggedError<SkillMemoryExceeded>()("SkillMemoryExceeded", {
  skill: Schema.String,
  kind: Schema.Literal("heap", "stack"),
  /** For "heap": limits.skill_memory_mb; for "stack": the stack limit in KiB. */
  limit: Schema.Number
}) {
  override get message() {
    return this.kind === "heap"
      ? `Stopped skill ${this.skill}: it used more than ${this.limit} MB of memory. Process the data in smaller pieces, or raise limits.skill_memory_mb.`
      : `Stopped skill ${this.skill}: it recursed or nested data deeper than the sandbox's ${this.limit} KiB stack allows. Use a loop instead of deep recursion, or flatten the data.`
  }
}

export class TooManyHandles extends Schema.TaggedError<TooManyHandles>()("TooManyHandles", {
  skill: Schema.String,
  limit: Schema.Number,
  path: Schema.String
}) {
  override get message() {
    return `Refused fs.open("${clip(this.path)}") by skill ${this.skill}: it already holds ${this.limit} open files, the most a skill may hold. Close files with fs.close(handle) when done with them.`
  }
}

export class SkillThrew extends Schema.TaggedError<SkillThrew>()("SkillThrew", {
  skill: Schema.String,
  /** The file the error points at (the skill, or its test file). */
  file: Schema.String,
  /** The skill's own message, e.g. "TypeError: x is undefined", already cut to a readable length (`run.ts`). */
  error: Schema.String,
  line: Schema.NullOr(Schema.Number)
}) {
  override get message() {
    const where = this.line === null ? this.file : `${this.file}:${this.line}`
    return `Skill ${this.skill} threw ${this.error} (${where}). Fix the skill, or check the arguments it was given.`
  }
}

export class CapabilityDenied extends Schema.TaggedError<CapabilityDenied>()("CapabilityDenied", {
  skill: Schema.String,
  capability: Schema.String,
  reason: Schema.Literal("not_declared", "not_granted", "draft")
}) {
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
export const SpecialKind = Schema.Literal("directory", "FIFO", "socket", "character device", "block device", "symlink", "special file")
export type SpecialKind = typeof SpecialKind.Type

export class NotARegularFile extends Schema.TaggedError<NotARegularFile>()("NotARegularFile", {
  skill: Schema.String,
  operation: Schema.String,
  path: Schema.String,
  resolved: Schema.String,
  kind: SpecialKind
}) {
  override get message() {
    return `Refused ${clip(this.operation)}("${clip(this.path)}") by skill ${this.skill}: ${clip(this.resolved)} is a ${this.kind}, and skills read and write regular files only (and list directories): a FIFO, socket or device could block the run or reach the system. Point the skill at a regular file.`
  }
}

export class WriteLimitExceeded extends Schema.TaggedError<WriteLimitExceeded>()("WriteLimitExceeded", {
  skill: Schema.String,
  operation: Schema.String,
  path: Schema.String,
  /** Bytes the run would have written with this call (a draft's append counts the copy of the original). */
  attempted: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `Stopped skill ${this.skill} at ${clip(this.operation)}("${clip(this.path)}"): it would bring the bytes the run writes to ${this.attempted}, more than the ${this.limit} one run may write (a draft's append first copies the original file into its scratch directory, and that counts). Write less, or split the work into several runs.`
  }
}

export class CommandNotAllowed extends Schema.TaggedError<CommandNotAllowed>()("CommandNotAllowed", {
  skill: Schema.String,
  command: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Refused exec("${clip(this.command)}") by skill ${this.skill}: ${clip(this.reason)}. The whitelist is fixed: change the skill to do this another way.`
  }
}

export class OutputTooLarge extends Schema.TaggedError<OutputTooLarge>()("OutputTooLarge", {
  skill: Schema.String,
  /** "result" or "log data". */
  what: Schema.String,
  size: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `Refused the ${this.what} of skill ${this.skill}: ${this.size} characters of JSON, more than the ${this.limit} allowed. Return a summary, or write large data to a file the skill declares.`
  }
}

export class ResultNotJson extends Schema.TaggedError<ResultNotJson>()("ResultNotJson", {
  skill: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Skill ${this.skill} returned a value that is not JSON the agent accepts (${this.reason}). Return plain data: objects and arrays (nested at most 512 levels), strings, numbers, booleans and null.`
  }
}

export class FunctionNotExported extends Schema.TaggedError<FunctionNotExported>()("FunctionNotExported", {
  skill: Schema.String,
  function: Schema.String,
  exported: Strings
}) {
  override get message() {
    const exported = list(this.exported, "nothing")
    return `Skill ${this.skill} does not export a function ${this.function} (it exports ${exported}). Export it: \`export function ${this.function}(args) {…}\` or \`module.exports = { ${this.function} }\`.`
  }
}

export class SkillStalled extends Schema.TaggedError<SkillStalled>()("SkillStalled", {
  skill: Schema.String,
  function: Schema.String
}) {
  override get message() {
    return `Skill ${this.skill}: ${this.function} returned a promise that can never settle (nothing in the sandbox is left to resolve it: there are no timers or asynchronous host calls). Make sure every promise the skill awaits is resolved.`
  }
}

export class SandboxCrashed extends Schema.TaggedError<SandboxCrashed>()("SandboxCrashed", {
  skill: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `The sandbox engine failed while running skill ${this.skill}: ${clip(this.reason)}. The engine was discarded and the next run starts a fresh one; if it happens again with this skill, report it with the skill file.`
  }
}

/** The worker thread's bundle is not there: the package was not built. Not a run's error: the layer's. */
export class SandboxWorkerMissing extends Schema.TaggedError<SandboxWorkerMissing>()("SandboxWorkerMissing", {
  script: Schema.String
}) {
  override get message() {
    return `The sandbox cannot start: its worker bundle ${this.script} is missing. Run \`npm run build\` (or \`npm ci\`) in the luallm-agent package to build it.`
  }
}

/** Every error a run can end with, as it crosses from the worker to the main thread. */
export const SandboxErrorSchema = Schema.Union(
  PathNotAllowed,
  UndeclaredDependency,
  SkillTimeout,
  SkillMemoryExceeded,
  TooManyHandles,
  SkillThrew,
  CapabilityDenied,
  CommandNotAllowed,
  NotARegularFile,
  WriteLimitExceeded,
  OutputTooLarge,
  ResultNotJson,
  FunctionNotExported,
  SkillStalled,
  SandboxCrashed
)

export type SandboxError = typeof SandboxErrorSchema.Type
