/**
 * Which paths a skill may touch, decided the same way as `AppConfig.checkPath`: expand `~`,
 * make absolute, remove `.`/`..`, resolve symlinks in the longest existing prefix, then match
 * against the globs with their bases resolved too. A path must match the skill's declared
 * `paths` AND the config's `allowed_paths`. On top of that, for skills:
 * - a path that contains `..` is refused outright;
 * - luallm-agent's own directories (skills, drafts, state, audit) are never writable, and a
 *   draft may not even read `skills.allowed_dir`;
 * - in a draft run every write lands in the run's scratch directory, under the real path it
 *   names (`/home/u/out.csv` → `<scratch>/home/u/out.csv`), and reads see those writes first.
 * The I/O then uses the resolved path, never the string the skill passed.
 */
import { Either } from "effect"
import { globBase, hasParentSegment, matchesAnyGlob, normalizePath } from "../../core/pathGlob.ts"
import { PathNotAllowed } from "./errors.ts"
import type { SandboxHost } from "./host.ts"

export type RunMode =
  | { readonly _tag: "Trusted" }
  | { readonly _tag: "Draft"; readonly scratchDir: string }

export const trusted: RunMode = { _tag: "Trusted" }
export const draft = (scratchDir: string): RunMode => ({ _tag: "Draft", scratchDir })

/** A directory (or file) that belongs to luallm-agent, with the config key that names it. */
export interface ProtectedPath {
  readonly key: string
  readonly path: string
  /** Drafts may not read it either (skills.allowed_dir). */
  readonly hiddenFromDrafts: boolean
}

export type Access = "read" | "write"

export interface Granted {
  /** After `~`, `..` and symlinks. */
  readonly resolved: string
  /** Where the I/O goes: `resolved`, or its copy in the draft's scratch directory. */
  readonly target: string
  /** For draft reads of directories: the scratch mirror, whose entries are merged in. */
  readonly scratchMirror: string | null
}

/** The real path of `absolute`, resolving symlinks in its longest existing prefix. */
export const resolveRealPathSync = (host: SandboxHost, absolute: string): string => {
  try {
    return host.realPath(absolute)
  } catch {
    const slash = absolute.lastIndexOf("/")
    if (slash <= 0) return absolute
    const parent = resolveRealPathSync(host, absolute.slice(0, slash))
    return `${parent === "/" ? "" : parent}${absolute.slice(slash)}`
  }
}

/** A glob made absolute, with its literal base resolved like a path. */
const realGlob = (host: SandboxHost, glob: string): string => {
  const absolute = normalizePath(glob, host.cwd, host.home)
  const base = globBase(absolute)
  const realBase = resolveRealPathSync(host, base)
  return realBase + absolute.slice(base.length)
}

const isInside = (path: string, dir: string): boolean => path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`)

/** `audit.jsonl.3` is a rotation of `audit.jsonl`. */
const isRotationOf = (path: string, file: string): boolean =>
  path.startsWith(file) && /^\.\d+$/.test(path.slice(file.length))

/** The globs of one side (declared or allowed), lexical and resolved, computed once per run. */
export interface GlobSet {
  readonly written: ReadonlyArray<string>
  readonly lexical: ReadonlyArray<string>
  readonly real: ReadonlyArray<string>
}

export const globSet = (host: SandboxHost, globs: ReadonlyArray<string>): GlobSet => ({
  written: globs,
  lexical: globs.map((glob) => normalizePath(glob, host.cwd, host.home)),
  real: globs.map((glob) => realGlob(host, glob))
})

export interface PathGuard {
  readonly check: (operation: string, requested: string, access: Access) => Either.Either<Granted, PathNotAllowed>
}

const MAX_REMEMBERED_PATHS = 4096

/** A value computed on first use: a run that never touches a file resolves no path at all. */
const lazy = <A>(compute: () => A): (() => A) => {
  let cached: { readonly value: A } | undefined
  return () => (cached ??= { value: compute() }).value
}

/** What every skill of one run shares: `allowed_paths`, the protected paths, the scratch root. */
export interface RunPaths {
  readonly host: SandboxHost
  /**
   * `resolveRealPathSync`, remembered for the run. Sound against the skill: nothing a skill
   * can do (write, append, mkdir, the read-only commands) creates or moves a symlink or moves
   * or removes a directory, and a directory it creates is made at the already-resolved path,
   * so no resolution changes under it during its run; files are still opened with O_NOFOLLOW.
   */
  readonly resolve: (lexical: string) => string
  readonly allowed: () => GlobSet
  readonly protectedPaths: () => ReadonlyArray<ProtectedPath>
  /** The resolved scratch directory of a draft run, or null for a trusted run. */
  readonly scratchRoot: () => string | null
}

export const makeRunPaths = (options: {
  readonly host: SandboxHost
  readonly allowedPaths: ReadonlyArray<string>
  readonly protectedPaths: ReadonlyArray<ProtectedPath>
  readonly mode: RunMode
}): RunPaths => {
  const { host, mode } = options
  const resolved = new Map<string, string>()
  const resolve = (lexical: string) => {
    const known = resolved.get(lexical)
    if (known !== undefined) return known
    if (resolved.size >= MAX_REMEMBERED_PATHS) resolved.clear()
    const real = resolveRealPathSync(host, lexical)
    resolved.set(lexical, real)
    return real
  }
  const resolveWritten = (path: string) => resolve(normalizePath(path, host.cwd, host.home))
  return {
    host,
    resolve,
    allowed: lazy(() => globSet(host, options.allowedPaths)),
    protectedPaths: lazy(() => options.protectedPaths.map((p) => ({ ...p, path: resolveWritten(p.path) }))),
    scratchRoot: lazy(() => (mode._tag === "Draft" ? resolveWritten(mode.scratchDir) : null))
  }
}

/** The path rules of one skill in a run: its own declared paths, the run's shared ones. */
export const makePathGuard = (run: RunPaths, skill: string, declaredPaths: ReadonlyArray<string>): PathGuard => {
  const { host } = run
  const declared = lazy(() => globSet(host, declaredPaths))

  const check = (operation: string, requested: string, access: Access): Either.Either<Granted, PathNotAllowed> => {
    const refuse = (resolved: string, reason: PathNotAllowed["reason"], rule: ReadonlyArray<string>) =>
      Either.left(new PathNotAllowed({ skill, operation, path: requested, resolved, reason, rule }))
    if (hasParentSegment(requested)) return refuse(requested, "parent_segment", [])
    const lexical = normalizePath(requested, host.cwd, host.home)
    const resolved = run.resolve(lexical)
    const scratchRoot = run.scratchRoot()
    for (const p of run.protectedPaths()) {
      const reachable = access === "read" && !(p.hiddenFromDrafts && scratchRoot !== null)
      if (!reachable && (isInside(resolved, p.path) || isRotationOf(resolved, p.path))) {
        return refuse(resolved, "protected", [`${p.key} (${p.path})`])
      }
    }
    const isDeclared = matchesAnyGlob(resolved, declared().real)
    const isAllowed = matchesAnyGlob(resolved, run.allowed().real)
    if (!isDeclared || !isAllowed) {
      const lexicallyFine = matchesAnyGlob(lexical, declared().lexical) && matchesAnyGlob(lexical, run.allowed().lexical)
      if (lexicallyFine && lexical !== resolved) {
        return refuse(resolved, "symlink_escape", [...declared().written, ...run.allowed().written])
      }
      return isDeclared ? refuse(resolved, "not_allowed", run.allowed().written) : refuse(resolved, "not_declared", declared().written)
    }
    if (scratchRoot === null) return Either.right({ resolved, target: resolved, scratchMirror: null })
    const mirror = `${scratchRoot}${resolved}`
    if (access === "write") return Either.right({ resolved, target: mirror, scratchMirror: mirror })
    return Either.right({ resolved, target: host.exists(mirror) ? mirror : resolved, scratchMirror: mirror })
  }
  return { check }
}
