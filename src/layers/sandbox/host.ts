/**
 * The synchronous host port the sandbox's injected functions use.
 *
 * Why synchronous, and why node:fs instead of @effect/platform's FileSystem: QuickJS calls
 * a host function and waits for its return value on the same stack (the release-sync
 * engine has no way to suspend), so `fs.readFile` inside a skill must be answered before
 * the host function returns. Effect's FileSystem is asynchronous. This module is the one
 * place the sandbox touches node directly; it does no checking — `paths.ts` decides
 * what may be touched and hands this port resolved paths only.
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

export type OpenFlags = "r" | "w" | "a"

export type FileRead =
  | { readonly _tag: "Read"; readonly text: string; readonly bytes: number }
  | { readonly _tag: "TooLarge"; readonly bytes: number }

export interface SandboxHost {
  /** Used to resolve `~` and relative paths the way AppConfig does. */
  readonly home: string
  readonly cwd: string
  /** The real path of an existing path; throws when it does not exist. */
  readonly realPath: (path: string) => string
  readonly exists: (path: string) => boolean
  /** The text of a file, unless it has more than `maxBytes` bytes. */
  readonly readFile: (path: string, maxBytes: number) => FileRead
  /** Returns the number of bytes written. */
  readonly writeFile: (path: string, data: string, append: boolean) => number
  readonly copyFile: (from: string, to: string) => void
  readonly listDir: (path: string) => ReadonlyArray<string>
  readonly makeDirectory: (path: string) => void
  readonly open: (path: string, flags: OpenFlags) => number
  /** Up to `max` bytes; an empty array at end of file. */
  readonly read: (fd: number, max: number) => Uint8Array
  readonly write: (fd: number, data: string) => number
  readonly close: (fd: number) => void
  readonly makeTempDirectory: () => string
  readonly removeDirectory: (path: string) => void
  /** Runs `command` with `args` as argv (never through a shell), stdin closed. */
  readonly spawn: (
    command: string,
    args: ReadonlyArray<string>,
    options: { readonly cwd: string; readonly timeoutMs: number; readonly maxBytes: number }
  ) => SpawnResult
}

const { O_APPEND, O_CREAT, O_NOFOLLOW, O_RDONLY, O_TRUNC, O_WRONLY } = fs.constants

// O_NOFOLLOW: the path was resolved and checked just before; a symlink planted at the
// last component since then is refused by the kernel instead of followed.
const openFlags: Record<OpenFlags, number> = {
  r: O_RDONLY | O_NOFOLLOW,
  w: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
  a: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW
}

/** Commands run with a fixed, minimal environment: no secrets from ours leak into them. */
const commandEnvironment = { PATH: "/usr/bin:/bin", LC_ALL: "C" }

export const nodeSandboxHost = (
  env: { readonly home: string; readonly cwd: string } = { home: process.env["HOME"] ?? homedir(), cwd: process.cwd() }
): SandboxHost => ({
  home: env.home,
  cwd: env.cwd,
  realPath: (path) => fs.realpathSync.native(path),
  exists: (path) => fs.existsSync(path),
  readFile: (path, maxBytes) => {
    const fd = fs.openSync(path, openFlags.r)
    try {
      const size = fs.fstatSync(fd).size
      if (size > maxBytes) return { _tag: "TooLarge", bytes: size }
      const buffer = Buffer.allocUnsafe(size)
      let bytes = 0
      for (let n = -1; n !== 0 && bytes < size; bytes += n) n = fs.readSync(fd, buffer, bytes, size - bytes, null)
      return { _tag: "Read", text: buffer.toString("utf8", 0, bytes), bytes }
    } finally {
      fs.closeSync(fd)
    }
  },
  writeFile: (path, data, append) => {
    const fd = fs.openSync(path, append ? openFlags.a : openFlags.w, 0o644)
    try {
      const bytes = Buffer.from(data, "utf8")
      fs.writeFileSync(fd, bytes)
      return bytes.length
    } finally {
      fs.closeSync(fd)
    }
  },
  copyFile: (from, to) => fs.copyFileSync(from, to),
  listDir: (path) => fs.readdirSync(path).sort(),
  makeDirectory: (path) => {
    fs.mkdirSync(path, { recursive: true })
  },
  open: (path, flags) => fs.openSync(path, openFlags[flags], 0o644),
  read: (fd, max) => {
    const buffer = Buffer.alloc(max)
    const count = fs.readSync(fd, buffer, 0, max, null)
    return buffer.subarray(0, count)
  },
  write: (fd, data) => fs.writeSync(fd, data, null, "utf8"),
  close: (fd) => fs.closeSync(fd),
  makeTempDirectory: () => fs.mkdtempSync(join(tmpdir(), "luallm-exec-")),
  removeDirectory: (path) => fs.rmSync(path, { recursive: true, force: true }),
  spawn: (command, args, options) => {
    const result = spawnSync(command, [...args], {
      cwd: options.cwd,
      env: commandEnvironment,
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
