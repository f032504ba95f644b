/**
 * What a skill's `fs` calls and `exec` arguments touch. Each path is checked by the skill's
 * `PathGuard` (resolved afresh), then opened through the host port, and the descriptor that
 * came back is checked again: where it really points (`checkOpened`: a directory swapped for a
 * symlink after the check shows here, and nothing is read or written through it) and what it
 * is (regular files only; directories only where a directory is listed or made).
 *
 * Refusals come back as `Left` (they stop the run); ordinary I/O failures (ENOENT, EISDIR…)
 * are thrown as errno errors, which the skill sees as exceptions it may catch.
 */
import { Either } from "effect"
import { hasParentSegment } from "../../core/pathGlob.ts"
import { NotARegularFile, type SandboxError, WriteLimitExceeded } from "./errors.ts"
import type { Word } from "./execPolicy.ts"
import { type OpenMode, type Opened, sameFile } from "./host.ts"
import type { Access, Granted, PathGuard } from "./paths.ts"

/** An ordinary I/O error, shaped like node's, for the skill to catch. */
const errno = (code: string, text: string): Error => Object.assign(new Error(`${code}: ${text}`), { code })

const dirname = (path: string): string => (path.lastIndexOf("/") <= 0 ? "/" : path.slice(0, path.lastIndexOf("/")))
const basename = (path: string): string => path.slice(path.lastIndexOf("/") + 1)

export type FileRead =
  | { readonly _tag: "Read"; readonly granted: Granted; readonly text: string; readonly bytes: number }
  | { readonly _tag: "TooLarge"; readonly bytes: number }

export interface FileAccess {
  readonly readFile: (requested: string, maxBytes: number) => Either.Either<FileRead, SandboxError>
  /** `fs.writeFile` / `fs.appendFile`: returns what was granted and the bytes written. */
  readonly writeFile: (operation: string, requested: string, text: string, append: boolean) => Either.Either<{ readonly granted: Granted; readonly bytes: number }, SandboxError>
  readonly exists: (requested: string) => Either.Either<{ readonly granted: Granted; readonly found: boolean }, SandboxError>
  readonly listDir: (requested: string) => Either.Either<{ readonly granted: Granted; readonly entries: ReadonlyArray<string> }, SandboxError>
  readonly mkdir: (requested: string) => Either.Either<Granted, SandboxError>
  /** `fs.open`: a verified descriptor, already emptied for "w". */
  readonly open: (requested: string, flags: "r" | "w" | "a") => Either.Either<{ readonly granted: Granted; readonly fd: number }, SandboxError>
  /** Counts `bytes` against the run's write budget, or refuses when they do not fit. */
  readonly spend: (operation: string, requested: string, bytes: number) => Either.Either<void, SandboxError>
  /**
   * One word of a command's argv as the command receives it: a file is checked like an `fs`
   * read (and, as the start of a recursion, with everything below it) and replaced by its
   * resolved path. A relative name stays as written: it names a file in the command's own
   * empty directory, so it reaches nothing.
   */
  readonly execWord: (operation: string, word: Word, recursion: string) => Either.Either<string, SandboxError>
}

const specialKind = (kind: Opened["kind"]) => (kind === "file" ? "special file" : kind)

export const makeFileAccess = (guard: PathGuard, skill: string): FileAccess => {
  const { host } = guard.run
  const { budget } = guard.run

  const notRegular = (operation: string, requested: string, resolved: string, kind: Opened["kind"]) =>
    new NotARegularFile({ skill, operation, path: requested, resolved, kind: specialKind(kind) })

  /**
   * Opens `target` (the granted path or its scratch copy) and checks the descriptor: where it
   * points, and that it is a regular file (or a directory, for "directory"). A file this open
   * created somewhere it should not be is removed again.
   */
  const openChecked = (
    operation: string,
    requested: string,
    granted: Granted,
    target: string,
    access: Access,
    mode: OpenMode
  ): Either.Either<{ readonly opened: Opened; readonly granted: Granted }, SandboxError> => {
    let opened: Opened
    try {
      opened = host.open(target, mode)
    } catch (error) {
      // O_NONBLOCK makes a FIFO without a reader (or an absent device) fail at once instead of blocking.
      if (error instanceof Error && "code" in error && error.code === "ENXIO") {
        return Either.left(notRegular(operation, requested, target, host.kindOf(target) ?? "special file"))
      }
      throw error
    }
    const where = host.whereIs(opened)
    const release = () => {
      if (opened.created) host.removeCreated(opened, where)
      host.close(opened.fd)
    }
    const refuse = (error: SandboxError) => {
      release()
      return Either.left(error)
    }
    const checked = guard.checkOpened(operation, requested, { ...granted, target }, where, access)
    if (Either.isLeft(checked)) return refuse(checked.left)
    const wrongKind = mode === "directory"
      ? opened.kind === "directory" ? undefined : errno("ENOTDIR", "not a directory")
      : opened.kind === "directory" ? errno("EISDIR", "illegal operation on a directory") : undefined
    if (wrongKind !== undefined) {
      release()
      throw wrongKind
    }
    if (mode !== "directory" && opened.kind !== "file") return refuse(notRegular(operation, requested, where, opened.kind))
    return Either.right({ opened, granted: checked.right })
  }

  const spend: FileAccess["spend"] = (operation, requested, bytes) => {
    const attempted = budget.written + bytes
    if (attempted > budget.limit) return Either.left(new WriteLimitExceeded({ skill, operation, path: requested, attempted, limit: budget.limit }))
    budget.written = attempted
    return Either.void
  }

  /**
   * A draft writes to its scratch copy: the copy's directory is made, and an append (or "a")
   * first copies the original there — bounded by the write budget, so a huge sparse file is
   * refused instead of copied.
   */
  const prepareDraftTarget = (operation: string, requested: string, granted: Granted, keepContents: boolean): Either.Either<void, SandboxError> => {
    if (granted.target === granted.resolved) return Either.void
    host.makeDirectory(dirname(granted.target))
    if (!keepContents || host.exists(granted.target) || host.kindOf(granted.resolved) === null) return Either.void
    return Either.flatMap(openChecked(operation, requested, granted, granted.resolved, "read", "read"), ({ opened: source }) => {
      try {
        return Either.flatMap(spend(operation, requested, source.size), () =>
          Either.map(openChecked(operation, requested, granted, granted.target, "write", "write"), ({ opened: copy }) => {
            try {
              host.copy(source.fd, copy.fd, source.size)
            } finally {
              host.close(copy.fd)
            }
          }))
      } finally {
        host.close(source.fd)
      }
    })
  }

  /**
   * A regular file opened for reading. First as written: when that path passes the rules and
   * the descriptor is exactly there, it was checked before it was opened and nothing had to be
   * resolved (reads are the hot path). Where the descriptor is, is read back from the kernel
   * once per file and run; after that, the same identity (device, inode, change time) proves
   * the same file with the same content, names and links, so every byte read is one the
   * kernel showed at an allowed path. Otherwise — a symlink on the path, a draft, any error —
   * the path is resolved, checked and opened again the careful way.
   */
  const openForReading = (operation: string, requested: string): Either.Either<{ readonly opened: Opened; readonly granted: Granted }, SandboxError> => {
    const asWritten = guard.checkAsWritten(operation, requested, "read")
    if (asWritten !== undefined) {
      const opened = tryOpen(asWritten.target)
      if (opened !== undefined && opened.kind === "file" && isWhereChecked(opened, asWritten.target)) return Either.right({ opened, granted: asWritten })
      if (opened !== undefined) host.close(opened.fd)
    }
    return Either.flatMap(guard.check(operation, requested, "read"), (granted) => openChecked(operation, requested, granted, granted.target, "read", "read"))
  }

  const isWhereChecked = (opened: Opened, path: string): boolean => {
    const seen = guard.run.seenFiles.get(path)
    if (seen !== undefined && sameFile(seen, opened.identity)) return true
    if (host.whereIs(opened) !== path) return false
    guard.run.rememberFile(path, opened.identity)
    return true
  }

  const tryOpen = (path: string): Opened | undefined => {
    try {
      return host.open(path, "read")
    } catch {
      return undefined
    }
  }

  const readFile: FileAccess["readFile"] = (requested, maxBytes) =>
    Either.map(openForReading("fs.readFile", requested), ({ granted, opened }): FileRead => {
      try {
        if (opened.size > maxBytes) return { _tag: "TooLarge", bytes: opened.size }
        return { _tag: "Read", granted, ...host.readText(opened.fd, opened.size) }
      } finally {
        host.close(opened.fd)
      }
    })

  const writeFile: FileAccess["writeFile"] = (operation, requested, text, append) =>
    Either.gen(function*() {
      const granted = yield* guard.check(operation, requested, "write")
      yield* spend(operation, requested, Buffer.byteLength(text, "utf8"))
      yield* prepareDraftTarget(operation, requested, granted, append)
      const { granted: actual, opened } = yield* openChecked(operation, requested, granted, granted.target, "write", append ? "append" : "write")
      try {
        if (!append) host.truncate(opened.fd)
        return { granted: actual, bytes: host.write(opened.fd, text) }
      } finally {
        host.close(opened.fd)
      }
    })

  const open: FileAccess["open"] = (requested, flags) =>
    Either.gen(function*() {
      if (flags === "r") {
        const { granted, opened } = yield* openForReading("fs.open", requested)
        return { granted, fd: opened.fd }
      }
      const granted = yield* guard.check("fs.open", requested, "write")
      yield* prepareDraftTarget("fs.open", requested, granted, flags === "a")
      const mode: OpenMode = flags === "a" ? "append" : "write"
      const { granted: actual, opened } = yield* openChecked("fs.open", requested, granted, granted.target, "write", mode)
      if (flags === "w") host.truncate(opened.fd)
      return { granted: actual, fd: opened.fd }
    })

  /** Whether `path` exists, looked up in its verified parent directory. */
  const existsAt = (requested: string, granted: Granted, path: string): Either.Either<boolean, SandboxError> => {
    if (path === "/") return Either.right(true)
    const parent = dirname(path)
    let dir: Either.Either<{ readonly opened: Opened }, SandboxError>
    try {
      dir = openChecked("fs.exists", requested, granted, parent, "read", "directory")
    } catch {
      return Either.right(false)
    }
    return Either.map(dir, ({ opened }) => {
      try {
        return host.entryKind(opened, basename(path)) !== null
      } finally {
        host.close(opened.fd)
      }
    })
  }

  const exists: FileAccess["exists"] = (requested) =>
    Either.gen(function*() {
      const granted = yield* guard.check("fs.exists", requested, "read")
      const found = (yield* existsAt(requested, granted, granted.target)) ||
        (granted.scratchMirror !== null && granted.scratchMirror !== granted.target && (yield* existsAt(requested, granted, granted.scratchMirror)))
      return { granted, found }
    })

  const listAt = (requested: string, granted: Granted, path: string): Either.Either<ReadonlyArray<string>, SandboxError> =>
    Either.map(openChecked("fs.listDir", requested, granted, path, "read", "directory"), ({ opened }) => {
      try {
        return host.listDirectory(opened)
      } finally {
        host.close(opened.fd)
      }
    })

  const listDir: FileAccess["listDir"] = (requested) =>
    Either.gen(function*() {
      const granted = yield* guard.check("fs.listDir", requested, "read")
      const mirror = granted.scratchMirror
      const fromMirror = mirror !== null && host.exists(mirror) ? yield* listAt(requested, granted, mirror) : []
      const fromReal = fromMirror.length === 0 || host.exists(granted.resolved) ? yield* listAt(requested, granted, granted.resolved) : []
      return { granted, entries: [...new Set([...fromReal, ...fromMirror])].sort() }
    })

  /**
   * `mkdir -p`, one checked component at a time: every directory it would create must itself
   * be declared, allowed and outside the trust roots (so no `~/.local/bin` appears on the way
   * to a declared path), and each is made inside its verified parent.
   */
  const mkdir: FileAccess["mkdir"] = (requested) =>
    Either.gen(function*() {
      const granted = yield* guard.check("fs.mkdir", requested, "write")
      const missing: Array<string> = []
      let existing = granted.resolved
      while (host.kindOf(existing) === null) {
        missing.unshift(basename(existing))
        existing = dirname(existing)
      }
      if (missing.length === 0 && host.kindOf(existing) !== "directory") throw errno("EEXIST", "file already exists")
      let path = existing
      for (const name of missing) {
        path = `${path === "/" ? "" : path}/${name}`
        yield* guard.checkResolved("fs.mkdir", requested, path, "write")
      }
      if (granted.target !== granted.resolved) {
        host.makeDirectory(granted.target)
        return granted
      }
      let { opened: dir } = yield* openChecked("fs.mkdir", requested, { ...granted, resolved: existing }, existing, "write", "directory")
      try {
        let expected = existing
        for (const name of missing) {
          host.makeDirectoryIn(dir, name)
          const child = host.openDirectoryIn(dir, name)
          host.close(dir.fd)
          dir = child
          expected = `${expected === "/" ? "" : expected}/${name}`
          yield* guard.checkOpened("fs.mkdir", requested, { ...granted, resolved: expected, target: expected }, host.whereIs(child), "write")
        }
      } finally {
        host.close(dir.fd)
      }
      return granted
    })

  const isAbsolute = (path: string) => path.startsWith("/") || path === "~" || path.startsWith("~/")

  const execWord: FileAccess["execWord"] = (operation, word, recursion) => {
    if (word._tag === "Literal") return Either.right(word.text)
    const { path, prefix, role } = word
    if (!isAbsolute(path)) {
      return hasParentSegment(path) ? Either.map(guard.check(operation, path, "read"), () => prefix + path) : Either.right(prefix + path)
    }
    return Either.gen(function*() {
      const { resolved } = yield* guard.check(operation, path, "read")
      const kind = host.kindOf(resolved)
      if (kind !== null && kind !== "file" && kind !== "directory") return yield* Either.left(notRegular(operation, path, resolved, kind))
      if (recursion !== "" && role === "operand" && kind !== "file") yield* guard.checkSubtree(`${operation} ${recursion}`, path, resolved)
      return prefix + resolved
    })
  }

  return { readFile, writeFile, exists, listDir, mkdir, open, spend, execWord }
}
