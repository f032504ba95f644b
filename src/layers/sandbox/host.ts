/**
 * The synchronous host port the sandbox's injected functions use.
 *
 * Why synchronous, and why node:fs instead of @effect/platform's FileSystem: QuickJS calls
 * a host function and waits for its return value on the same stack (the release-sync
 * engine has no way to suspend), so `fs.readFile` inside a skill must be answered before
 * the host function returns. Effect's FileSystem is asynchronous. This module is the one
 * place the sandbox touches node directly; it does no checking — `paths.ts` decides
 * what may be touched and `fileAccess.ts` checks what this port reports it opened.
 *
 * Every open reports what the descriptor really is: its kind and identity (`fstat`), and on
 * demand where it points (`whereIs`: read back from the kernel through `/proc/self/fd/N`, so
 * a directory swapped for a symlink after the path was checked shows). Opens never follow a symlink at the last component,
 * never block (O_NONBLOCK: a FIFO without a writer would), and never truncate or create
 * anything before the caller has seen where they landed: a write opens without O_TRUNC and
 * truncates the verified descriptor; a file created in the wrong place can be removed.
 * Directories are listed and created through a verified descriptor of the directory too.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { homedir, tmpdir } from "node:os"
import { join } from "node:path"

export interface SpawnResult {
  readonly stdout: string
  readonly stderr: string
  /** Exit code; null when the process was killed (time or output limit). */
  readonly code: number | null
  readonly timedOut: boolean
  readonly truncated: boolean
}

export type FileKind = "file" | "directory" | "FIFO" | "socket" | "character device" | "block device" | "symlink" | "special file"

export type OpenMode = "read" | "write" | "append" | "directory"

/**
 * Device, inode, size and change time: the same identity means the same file, unchanged in
 * content, name and links since it was seen (a write, rename, link or chmod sets its ctime).
 */
export interface FileIdentity {
  readonly dev: number
  readonly ino: number
  readonly size: number
  readonly ctimeMs: number
}

export const sameFile = (a: FileIdentity, b: FileIdentity): boolean =>
  a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.ctimeMs === b.ctimeMs

/** A descriptor and what it turned out to be (`whereIs` says where it points). */
export interface Opened {
  readonly fd: number
  /** The path it was opened by. */
  readonly openedAs: string
  readonly kind: FileKind
  readonly size: number
  readonly identity: FileIdentity
  /** This open created the file. */
  readonly created: boolean
}

export interface SandboxHost {
  /** Used to resolve `~` and relative paths the way AppConfig does. */
  readonly home: string
  readonly cwd: string
  /** The real path of an existing path; throws when it does not exist. */
  readonly realPath: (path: string) => string
  readonly exists: (path: string) => boolean
  /** The kind of what is at `path` (not following a last symlink), or null when nothing is. */
  readonly kindOf: (path: string) => FileKind | null
  /** Opens `path` without following a last symlink, without blocking and without truncating. */
  readonly open: (path: string, mode: OpenMode) => Opened
  /** The real path an open descriptor points at, as the kernel reports it. */
  readonly whereIs: (opened: Opened) => string
  /** Empties a file opened for writing (after its descriptor was verified). */
  readonly truncate: (fd: number) => void
  /** Removes the file `opened` created, if it is still the file at `where`. */
  readonly removeCreated: (opened: Opened, where: string) => void
  /** The whole file as text, at most `size` bytes. */
  readonly readText: (fd: number, size: number) => { readonly text: string; readonly bytes: number }
  /** Up to `max` bytes; an empty array at end of file. */
  readonly read: (fd: number, max: number) => Uint8Array
  /** Writes all of `data`; returns the number of bytes written. */
  readonly write: (fd: number, data: string) => number
  /** Copies at most `maxBytes` bytes from one descriptor to the other; returns the count. */
  readonly copy: (from: number, to: number, maxBytes: number) => number
  readonly close: (fd: number) => void
  /** The entries of an opened directory. */
  readonly listDirectory: (dir: Opened) => ReadonlyArray<string>
  /** The kind of the entry `name` of an opened directory, or null when there is none. */
  readonly entryKind: (dir: Opened, name: string) => FileKind | null
  /** Creates the directory `name` inside an opened directory (an existing one is fine). */
  readonly makeDirectoryIn: (dir: Opened, name: string) => void
  /** Opens the directory `name` inside an opened directory, not following a symlink. */
  readonly openDirectoryIn: (dir: Opened, name: string) => Opened
  /** `mkdir -p`, for the sandbox's own scratch directories. */
  readonly makeDirectory: (path: string) => void
  readonly makeTempDirectory: () => string
  readonly removeDirectory: (path: string) => void
  /** Whether `spawn` can bound a command's memory and file sizes (it needs util-linux's prlimit). */
  readonly boundsCommands: boolean
  /**
   * Runs `command` with `args` as argv (never through a shell), stdin closed, in `dir/work`
   * (empty) with `dir/tmp` as its TMPDIR and no other environment than PATH and LC_ALL, its
   * address space bounded by `memoryBytes`, each file it writes (sort's temporary files) by
   * `fileBytes`, and no core dump.
   */
  readonly spawn: (command: string, args: ReadonlyArray<string>, options: SpawnOptions) => SpawnResult
}

export interface SpawnOptions {
  readonly dir: string
  readonly timeoutMs: number
  /** Bytes of stdout (and of stderr) kept; a command that prints more is killed. */
  readonly maxBytes: number
  readonly memoryBytes: number
  readonly fileBytes: number
}

const { O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = fs.constants

// O_NOCTTY: a terminal reached by mistake never becomes the agent's controlling terminal.
const never = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
const openFlags: Record<OpenMode, number> = {
  read: O_RDONLY | never,
  write: O_WRONLY | never,
  append: O_WRONLY | O_APPEND | never,
  directory: O_RDONLY | O_DIRECTORY | never
}

const kindOfStats = (stats: fs.Stats): FileKind =>
  stats.isFile()
    ? "file"
    : stats.isDirectory()
    ? "directory"
    : stats.isFIFO()
    ? "FIFO"
    : stats.isSocket()
    ? "socket"
    : stats.isCharacterDevice()
    ? "character device"
    : stats.isBlockDevice()
    ? "block device"
    : stats.isSymbolicLink()
    ? "symlink"
    : "special file"

const isErrnoCode = (error: unknown, code: string): boolean =>
  error instanceof Error && "code" in error && error.code === code

/** Where descriptors can be read back: Linux's /proc, or nowhere (see `descriptorPath`). */
const procFd = fs.existsSync("/proc/self/fd") ? "/proc/self/fd" : null

/**
 * The real path of an open descriptor. On Linux the kernel says it. Elsewhere the path it was
 * opened by is resolved again and must still name the same file (device and inode), which
 * catches a swap that stays in place but not one that is undone in between.
 */
const descriptorPath = (fd: number, openedAs: string): string => {
  if (procFd !== null) return fs.readlinkSync(`${procFd}/${fd}`)
  const stats = fs.fstatSync(fd)
  try {
    const real = fs.realpathSync.native(openedAs)
    const now = fs.statSync(real)
    return now.dev === stats.dev && now.ino === stats.ino ? real : `${openedAs} (changed while it was opened)`
  } catch {
    return `${openedAs} (gone while it was opened)`
  }
}

/** A path that reaches `name` inside an opened directory, whatever happens to its old path. */
const inside = (dir: Opened, name: string): string => `${procFd === null ? dir.openedAs : `${procFd}/${dir.fd}`}/${name}`

const describe = (fd: number, openedAs: string, created: boolean): Opened => {
  try {
    const stats = fs.fstatSync(fd)
    const identity = { dev: stats.dev, ino: stats.ino, size: stats.size, ctimeMs: stats.ctimeMs }
    return { fd, openedAs, kind: kindOfStats(stats), size: stats.size, identity, created }
  } catch (error) {
    fs.closeSync(fd)
    throw error
  }
}

const openPath = (path: string, mode: OpenMode): Opened => {
  if (mode === "read" || mode === "directory") return describe(fs.openSync(path, openFlags[mode]), path, false)
  try {
    // O_EXCL: when this creates the file, it is ours to remove should it land in the wrong place.
    return describe(fs.openSync(path, openFlags[mode] | O_CREAT | O_EXCL, 0o644), path, true)
  } catch (error) {
    if (!isErrnoCode(error, "EEXIST")) throw error
    return describe(fs.openSync(path, openFlags[mode]), path, false)
  }
}

/** Commands run with a fixed, minimal environment: no secrets from ours leak into them. */
const commandEnvironment = (tmp: string) => ({ PATH: "/usr/bin:/bin", LC_ALL: "C", TMPDIR: tmp })

/**
 * util-linux's prlimit sets a command's resource limits and then becomes the command (exec, same
 * process): node cannot set them on a child itself. Without it no command runs, because a grep
 * regex alone can take all the host's memory.
 */
const prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].find((path) => fs.existsSync(path)) ?? null

/**
 * Where the kernel lists the processes this thread started (Linux), for the main thread to kill
 * them when it stops the run: a thread waiting for a command cannot be terminated until the
 * command ends. Null where there is no such list.
 */
export const commandsOfThisThread = (): string | null => {
  try {
    const file = `/proc/${fs.readlinkSync("/proc/thread-self")}/children`
    return fs.existsSync(file) ? file : null
  } catch {
    return null
  }
}

export const nodeSandboxHost = (
  env: { readonly home: string; readonly cwd: string } = { home: process.env["HOME"] ?? homedir(), cwd: process.cwd() }
): SandboxHost => ({
  home: env.home,
  cwd: env.cwd,
  realPath: (path) => fs.realpathSync.native(path),
  exists: (path) => fs.existsSync(path),
  kindOf: (path) => {
    try {
      return kindOfStats(fs.lstatSync(path))
    } catch (error) {
      if (isErrnoCode(error, "ENOENT") || isErrnoCode(error, "ENOTDIR")) return null
      throw error
    }
  },
  open: openPath,
  whereIs: (opened) => descriptorPath(opened.fd, opened.openedAs),
  truncate: (fd) => fs.ftruncateSync(fd, 0),
  removeCreated: (opened, where) => {
    const stats = fs.fstatSync(opened.fd)
    try {
      const there = fs.lstatSync(where)
      if (there.dev === stats.dev && there.ino === stats.ino) fs.unlinkSync(where)
    } catch (error) {
      if (!isErrnoCode(error, "ENOENT")) throw error
    }
  },
  readText: (fd, size) => {
    const buffer = Buffer.allocUnsafe(size)
    let bytes = 0
    for (let n = -1; n !== 0 && bytes < size; bytes += n) n = fs.readSync(fd, buffer, bytes, size - bytes, null)
    return { text: buffer.toString("utf8", 0, bytes), bytes }
  },
  read: (fd, max) => {
    const buffer = Buffer.alloc(max)
    const count = fs.readSync(fd, buffer, 0, max, null)
    return buffer.subarray(0, count)
  },
  write: (fd, data) => {
    const bytes = Buffer.from(data, "utf8")
    fs.writeFileSync(fd, bytes)
    return bytes.length
  },
  copy: (from, to, maxBytes) => {
    const buffer = Buffer.allocUnsafe(Math.min(maxBytes, 1024 * 1024))
    let copied = 0
    while (copied < maxBytes) {
      const count = fs.readSync(from, buffer, 0, Math.min(buffer.length, maxBytes - copied), null)
      if (count === 0) break
      fs.writeSync(to, buffer, 0, count)
      copied += count
    }
    return copied
  },
  close: (fd) => fs.closeSync(fd),
  listDirectory: (dir) => fs.readdirSync(procFd === null ? dir.openedAs : `${procFd}/${dir.fd}`).sort(),
  entryKind: (dir, name) => {
    try {
      return kindOfStats(fs.lstatSync(inside(dir, name)))
    } catch (error) {
      if (isErrnoCode(error, "ENOENT")) return null
      throw error
    }
  },
  makeDirectoryIn: (dir, name) => {
    try {
      fs.mkdirSync(inside(dir, name))
    } catch (error) {
      if (!isErrnoCode(error, "EEXIST")) throw error
    }
  },
  openDirectoryIn: (dir, name) => describe(fs.openSync(inside(dir, name), openFlags.directory), `${dir.openedAs}/${name}`, false),
  makeDirectory: (path) => {
    fs.mkdirSync(path, { recursive: true })
  },
  makeTempDirectory: () => fs.mkdtempSync(join(tmpdir(), "luallm-exec-")),
  removeDirectory: (path) => fs.rmSync(path, { recursive: true, force: true }),
  boundsCommands: prlimit !== null,
  spawn: (command, args, options) => {
    if (prlimit === null) throw new Error("prlimit (util-linux) is needed to bound a command's memory")
    const work = join(options.dir, "work")
    const tmp = join(options.dir, "tmp")
    fs.mkdirSync(work, { recursive: true, mode: 0o700 })
    fs.mkdirSync(tmp, { recursive: true, mode: 0o700 })
    const limits = [`--as=${options.memoryBytes}`, `--fsize=${options.fileBytes}`, "--core=0"]
    const result = spawnSync(prlimit, [...limits, "--", command, ...args], {
      cwd: work,
      env: commandEnvironment(tmp),
      shell: false,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
      killSignal: "SIGKILL",
      maxBuffer: options.maxBytes,
      encoding: "utf8"
    })
    const code = result.error !== undefined && "code" in result.error ? result.error.code : undefined
    if (result.error !== undefined && code !== "ETIMEDOUT" && code !== "ENOBUFS") throw result.error
    return {
      stdout: result.stdout ?? "",
      stderr: result.stderr ?? "",
      code: result.status,
      timedOut: code === "ETIMEDOUT",
      truncated: code === "ENOBUFS"
    }
  }
})
