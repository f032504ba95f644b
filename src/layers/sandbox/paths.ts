/**
 * Which paths a skill may touch, decided the same way as `AppConfig.checkPath`: expand `~`,
 * make absolute, remove `.`/`..`, resolve symlinks in the longest existing prefix, then match
 * against the globs with their bases resolved too. A path must match the skill's declared
 * `paths` AND the config's `allowed_paths`. On top of that, for skills:
 * - a path that contains `..` is refused outright;
 * - `/proc`, `/sys` and `/dev` (live system state, the agent's own environment, devices) are
 *   refused outright, whatever the globs say;
 * - luallm-agent's trust roots (`trustRoots`: its config files, skills, drafts, state, audit
 *   log, the package, luallm's files) are never writable; config files are not even readable
 *   (they may hold `llm.api_key`), and a draft may not read `skills.allowed_dir`;
 * - in a draft run every write lands in the run's scratch directory, under the real path it
 *   names (`/home/u/out.csv` → `<scratch>/home/u/out.csv`), and reads see those writes first.
 *
 * Paths are resolved afresh on every call: a resolution remembered for the run would go stale
 * when another process swaps a directory for a symlink. Even a fresh one can go stale before
 * the open, so `fileAccess.ts` checks the descriptor it actually opened with `checkOpened`.
 * A read may skip resolving (`checkAsWritten`): the path as written passes the rules, and the
 * descriptor opened for it must then point exactly there, which proves no symlink was on it.
 */
import { Either } from "effect"
import type { AgentConfig, ConfigFileCandidate } from "../../core/config.ts"
import { globBase, hasParentSegment, matchesAnyGlob, normalizePath } from "../../core/pathGlob.ts"
import { PathNotAllowed } from "./errors.ts"
import type { FileIdentity, SandboxHost } from "./host.ts"

export type RunMode =
  | { readonly _tag: "Trusted" }
  | { readonly _tag: "Draft"; readonly scratchDir: string }

export const trusted: RunMode = { _tag: "Trusted" }
export const draft = (scratchDir: string): RunMode => ({ _tag: "Draft", scratchDir })

/** A file or directory the agent's trust rests on, with the config key (or role) that names it. */
export interface ProtectedPath {
  readonly key: string
  readonly path: string
  /** Who may read it: every skill, trusted skills only (not drafts), or no skill. */
  readonly readableBy: "all" | "trusted" | "none"
}

/**
 * A name protected in every directory (`luallm-agent.json`: the config a run started there
 * loads), for `description` in messages. Plain data, like `ProtectedPath`.
 */
export interface ProtectedName {
  readonly key: string
  readonly name: string
  readonly description: string
}

/** Every config file named `luallm-agent.json` that a later run started in its directory would load. */
export const protectedNames: ReadonlyArray<ProtectedName> = [
  { key: "a config file luallm-agent loads when started in its directory", name: "luallm-agent.json", description: "luallm-agent.json, in any directory" }
]

/** Where a program name without a slash is looked for, as `spawn` looks for it (`$PATH`). */
const onSearchPath = (binary: string, searchPath: ReadonlyArray<string>): ReadonlyArray<string> =>
  binary.includes("/") ? [] : searchPath.filter((dir) => dir.startsWith("/")).map((dir) => `${dir === "/" ? "" : dir.replace(/\/+$/, "")}/${binary}`)

/**
 * The directories Node resolves the package's own dependencies from (its worker loads
 * `quickjs-emscripten` at run time): `node_modules` in the package and in every directory above
 * it, as `require` walks up, where an app's install hoists them.
 */
const moduleDirectories = (packageRoot: string): ReadonlyArray<string> => {
  const dirs: Array<string> = []
  // The package's own node_modules is part of the package.
  for (let dir = parentOf(packageRoot);; dir = parentOf(dir)) {
    if (!dir.endsWith("/node_modules")) dirs.push(`${dir === "/" ? "" : dir}/node_modules`)
    if (dir === "/") return dirs
  }
}

/**
 * Everything no skill may change, whatever `allowed_paths` says (SPEC part 18): each config
 * file that was loaded or looked up (a skill could otherwise plant one that points
 * `luallm.binary` at a shell), the agent's directories and files, luallm's state file and
 * binary, and the installed package. Plain data: it crosses to the thread that runs the skill.
 */
export const trustRoots = (input: {
  readonly config: AgentConfig
  readonly configFiles: ReadonlyArray<ConfigFileCandidate>
  /** The directory holding luallm-agent's own package.json, when it was found. */
  readonly packageRoot: string | null
  /** `$PATH`, where a bare `luallm.binary` is found. */
  readonly searchPath: ReadonlyArray<string>
  /** The bin's code cache of the bundle (`compileCacheDirectory`), or null for none. */
  readonly compileCache: string | null
}): ReadonlyArray<ProtectedPath> => {
  const { config } = input
  const binary = config.luallm.binary
  return [
    ...input.configFiles.map((file): ProtectedPath => ({ key: `the config file (${file.via})`, path: file.path, readableBy: "none" })),
    ...onSearchPath(binary, input.searchPath).map((path): ProtectedPath => ({ key: "luallm.binary on PATH", path, readableBy: "all" })),
    ...(input.compileCache === null ? [] : [{ key: "the CLI's compiled-code cache", path: input.compileCache, readableBy: "all" } as const]),

    { key: "skills.allowed_dir", path: config.skills.allowed_dir, readableBy: "trusted" },
    { key: "skills.builtin_dir", path: config.skills.builtin_dir, readableBy: "all" },
    { key: "skills.agent_dir", path: config.skills.agent_dir, readableBy: "all" },
    { key: "state_dir", path: config.state_dir, readableBy: "all" },
    { key: "audit.path", path: config.audit.path, readableBy: "all" },
    { key: "luallm.state_file", path: config.luallm.state_file, readableBy: "all" },
    ...(binary.startsWith("/") ? [{ key: "luallm.binary", path: binary, readableBy: "all" } as const] : []),
    ...(input.packageRoot === null ? [] : [{ key: "the luallm-agent package", path: input.packageRoot, readableBy: "all" } as const]),
    ...(input.packageRoot === null ? [] : moduleDirectories(input.packageRoot)).map((path): ProtectedPath => ({
      key: "a node_modules directory the package loads code from",
      path,
      readableBy: "all"
    }))
  ]
}

/** The kernel's live state and the devices: never a skill's business. */
export const systemDirectories: ReadonlyArray<string> = ["/proc", "/sys", "/dev"]

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

/** `path` is `dir` or below it (checked on every file operation, so it allocates nothing). */
export const isInside = (path: string, dir: string): boolean =>
  path === dir || (path.startsWith(dir) && (dir === "/" || path.charCodeAt(dir.length) === 47))

const parentOf = (path: string): string => path.slice(0, Math.max(1, path.lastIndexOf("/")))

/** `name` is one of the components of `path` (a file or a directory on the way). */
const hasComponent = (path: string, name: string): boolean =>
  path.endsWith(`/${name}`) || path.includes(`/${name}/`)

/** `audit.jsonl.3` is a rotation of `audit.jsonl`. */
const isRotationOf = (path: string, file: string): boolean =>
  path.startsWith(file) && /^\.\d+$/.test(path.slice(file.length))

/** Whether `path` lies within a trust root at `root`: the root itself, below it, or a rotation of it. */
export const withinTrustRoot = (path: string, root: string): boolean => isInside(path, root) || isRotationOf(path, root)

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

/** True when some `dir/**` glob matches `path`: then everything below `path` matches it too. */
const coversSubtree = (path: string, globs: ReadonlyArray<string>): boolean =>
  matchesAnyGlob(path, globs.filter((glob) => glob.endsWith("/**")))

/** The bytes a run has written (and copied into scratch), against its limit. */
export interface WriteBudget {
  readonly limit: number
  written: number
}

const MAX_SEEN_FILES = 4096

/** A value computed on first use: a run that never touches a file resolves no path at all. */
const lazy = <A>(compute: () => A): (() => A) => {
  let cached: { readonly value: A } | undefined
  return () => (cached ??= { value: compute() }).value
}

/**
 * What every skill of one run shares: `allowed_paths`, the trust roots and the scratch root
 * (resolved once: they are the human's configuration, read when the run starts), and the
 * write budget.
 */
export interface RunPaths {
  readonly host: SandboxHost
  readonly allowed: () => GlobSet
  readonly protectedPaths: () => ReadonlyArray<ProtectedPath>
  /** The resolved scratch directory of a draft run, or null for a trusted run. */
  readonly scratchRoot: () => string | null
  readonly budget: WriteBudget
  /** Real path → identity of the file the kernel showed there in this run (`fileAccess.ts`). */
  readonly seenFiles: ReadonlyMap<string, FileIdentity>
  readonly rememberFile: (path: string, identity: FileIdentity) => void
}

export const makeRunPaths = (options: {
  readonly host: SandboxHost
  readonly allowedPaths: ReadonlyArray<string>
  readonly protectedPaths: ReadonlyArray<ProtectedPath>
  readonly mode: RunMode
  readonly maxWriteBytes: number
}): RunPaths => {
  const { host, mode } = options
  const resolveWritten = (path: string) => resolveRealPathSync(host, normalizePath(path, host.cwd, host.home))
  const seenFiles = new Map<string, FileIdentity>()
  return {
    host,
    allowed: lazy(() => globSet(host, options.allowedPaths)),
    protectedPaths: lazy(() => options.protectedPaths.map((p) => ({ ...p, path: resolveWritten(p.path) }))),
    scratchRoot: lazy(() => (mode._tag === "Draft" ? resolveWritten(mode.scratchDir) : null)),
    budget: { limit: options.maxWriteBytes, written: 0 },
    seenFiles,
    rememberFile: (path, identity) => {
      if (seenFiles.size >= MAX_SEEN_FILES) seenFiles.clear()
      seenFiles.set(path, identity)
    }
  }
}

export interface PathGuard {
  readonly run: RunPaths
  /** Resolves `requested` now and applies every rule. */
  readonly check: (operation: string, requested: string, access: Access) => Either.Either<Granted, PathNotAllowed>
  /**
   * The rules on the path as written, as if it were already real (no symlink on it): a first
   * try that saves resolving it, sound only when the descriptor then opened turns out to be
   * exactly there. Undefined when that try does not apply (a draft, `..`) or the rules say no.
   */
  readonly checkAsWritten: (operation: string, requested: string, access: Access) => Granted | undefined
  /** The rules on a path that is already real (a component `fs.mkdir` would create). */
  readonly checkResolved: (operation: string, requested: string, resolved: string, access: Access) => Either.Either<Granted, PathNotAllowed>
  /**
   * What a descriptor opened for `granted.target` turned out to be: when it points elsewhere,
   * something swapped a directory on the way. A trusted run may go on if the rules allow the
   * place it landed; a draft's scratch target must be exactly where it was meant to be.
   */
  readonly checkOpened: (operation: string, requested: string, granted: Granted, opened: string, access: Access) => Either.Either<Granted, PathNotAllowed>
  /**
   * A command that reads everything below `resolved` (`grep -r`, `find`): every path below must
   * be allowed, so `resolved` must lie under a `dir/**` glob of both the declared paths and
   * `allowed_paths`, and hold nothing the skill may not read.
   */
  readonly checkSubtree: (operation: string, requested: string, resolved: string) => Either.Either<void, PathNotAllowed>
}

/** The path rules of one skill in a run: its own declared paths, the run's shared ones. */
export const makePathGuard = (run: RunPaths, skill: string, declaredPaths: ReadonlyArray<string>): PathGuard => {
  const { host } = run
  const declared = lazy(() => globSet(host, declaredPaths))

  const refusal = (operation: string, requested: string, resolved: string, reason: PathNotAllowed["reason"], rule: ReadonlyArray<string>) =>
    new PathNotAllowed({ skill, operation, path: requested, resolved, reason, rule })

  const mayRead = (p: ProtectedPath) => p.readableBy === "all" || (p.readableBy === "trusted" && run.scratchRoot() === null)

  /** The rules on a resolved path; `lexical` tells a symlink escape from a plain refusal. */
  const rules = (operation: string, requested: string, lexical: string, resolved: string, access: Access, swapped: boolean): Either.Either<Granted, PathNotAllowed> => {
    const refuse = (reason: PathNotAllowed["reason"], rule: ReadonlyArray<string>) => Either.left(refusal(operation, requested, resolved, reason, rule))
    for (const dir of systemDirectories) if (isInside(resolved, dir)) return refuse("system", [dir])
    for (const p of run.protectedPaths()) {
      const reachable = access === "read" && mayRead(p)
      if (!reachable && withinTrustRoot(resolved, p.path)) return refuse("protected", [`${p.key} (${p.path})`])
    }
    if (access === "write") {
      const named = protectedNames.find((p) => hasComponent(resolved, p.name))
      if (named !== undefined) return refuse("protected", [`${named.key} (${named.description})`])
    }
    const isDeclared = matchesAnyGlob(resolved, declared().real)
    const isAllowed = matchesAnyGlob(resolved, run.allowed().real)
    if (!isDeclared || !isAllowed) {
      const rule = [...declared().written, ...run.allowed().written]
      if (swapped) return refuse("swapped", rule)
      const lexicallyFine = matchesAnyGlob(lexical, declared().lexical) && matchesAnyGlob(lexical, run.allowed().lexical)
      if (lexicallyFine && lexical !== resolved) return refuse("symlink_escape", rule)
      return isDeclared ? refuse("not_allowed", run.allowed().written) : refuse("not_declared", declared().written)
    }
    const scratchRoot = run.scratchRoot()
    if (scratchRoot === null) return Either.right({ resolved, target: resolved, scratchMirror: null })
    const mirror = `${scratchRoot}${resolved}`
    if (access === "write") return Either.right({ resolved, target: mirror, scratchMirror: mirror })
    return Either.right({ resolved, target: host.exists(mirror) ? mirror : resolved, scratchMirror: mirror })
  }

  const check: PathGuard["check"] = (operation, requested, access) => {
    if (hasParentSegment(requested)) return Either.left(refusal(operation, requested, requested, "parent_segment", []))
    const lexical = normalizePath(requested, host.cwd, host.home)
    return rules(operation, requested, lexical, resolveRealPathSync(host, lexical), access, false)
  }

  const checkAsWritten: PathGuard["checkAsWritten"] = (operation, requested, access) => {
    if (run.scratchRoot() !== null || hasParentSegment(requested)) return undefined
    const lexical = normalizePath(requested, host.cwd, host.home)
    return Either.getOrUndefined(rules(operation, requested, lexical, lexical, access, false))
  }

  const checkResolved: PathGuard["checkResolved"] = (operation, requested, resolved, access) =>
    rules(operation, requested, resolved, resolved, access, false)

  const checkOpened: PathGuard["checkOpened"] = (operation, requested, granted, opened, access) => {
    if (opened === granted.target) return Either.right(granted)
    const lexical = normalizePath(requested, host.cwd, host.home)
    if (granted.target !== granted.resolved) {
      return Either.left(refusal(operation, requested, opened, "swapped", [...declared().written, ...run.allowed().written]))
    }
    return Either.map(rules(operation, requested, lexical, opened, access, true), (): Granted => ({ resolved: opened, target: opened, scratchMirror: granted.scratchMirror }))
  }

  const checkSubtree: PathGuard["checkSubtree"] = (operation, requested, resolved) => {
    const refuse = (reason: PathNotAllowed["reason"], rule: ReadonlyArray<string>) => Either.left(refusal(operation, requested, resolved, reason, rule))
    if (!coversSubtree(resolved, declared().real) || !coversSubtree(resolved, run.allowed().real)) {
      return refuse("recursion_uncovered", [...declared().written, ...run.allowed().written])
    }
    const system = systemDirectories.find((dir) => isInside(dir, resolved))
    if (system !== undefined) return refuse("recursion_protected", [system])
    const hidden = run.protectedPaths().find((p) => !mayRead(p) && isInside(p.path, resolved))
    if (hidden !== undefined) return refuse("recursion_protected", [`${hidden.key} (${hidden.path})`])
    return Either.void
  }

  return { run, check, checkAsWritten, checkResolved, checkOpened, checkSubtree }
}
