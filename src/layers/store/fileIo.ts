/**
 * The few file operations the file store and the file audit do on their hot path, on raw
 * descriptors. `@effect/platform`'s `File` cannot open a file with `O_DSYNC`, and each of its
 * writes takes a semaphore and a trip through the thread pool; a transition's record is written
 * and made durable here in one trip (see `openDurableAppend`).
 *
 * What blocks and what does not: a write to the page cache of a few hundred bytes (an audit line)
 * is cheaper done at once than handed to the thread pool (on a busy 2-core machine the handover
 * alone cost more than the copy: see README, Performance); anything that waits for the disk
 * (`O_DSYNC` writes, fdatasync) goes through the thread pool and never blocks the event loop.
 */
import * as NFS from "node:fs"
import { Effect } from "effect"

/** Whether this platform has `O_DSYNC` (Windows has not): without it a durable append is a write, then an fdatasync. */
const dsync: number | undefined = NFS.constants.O_DSYNC

/**
 * Opens `path` for durable appends, creating it: every write returns once its bytes are on the
 * disk (`O_DSYNC`: the data and the size that reaches it, as fdatasync), so a record costs one
 * write, one trip to the thread pool.
 */
export const openDurableAppend = (path: string): Effect.Effect<number, NodeJS.ErrnoException> =>
  Effect.async((resume) => {
    const { O_APPEND, O_CREAT, O_WRONLY } = NFS.constants
    NFS.open(path, O_WRONLY | O_APPEND | O_CREAT | (dsync ?? 0), 0o666, (error, fd) => resume(error === null ? Effect.succeed(fd) : Effect.fail(error)))
  })

/** fdatasync in the thread pool: the event loop goes on meanwhile. Uninterruptible: the descriptor must outlive the call. */
export const fdatasync = (fd: number): Effect.Effect<void, NodeJS.ErrnoException> =>
  Effect.uninterruptible(Effect.async((resume) => {
    NFS.fdatasync(fd, (error) => resume(error === null ? Effect.void : Effect.fail(error)))
  }))

const writeOnce = (fd: number, bytes: Uint8Array, offset: number): Effect.Effect<number, NodeJS.ErrnoException> =>
  Effect.async((resume) => {
    NFS.write(fd, bytes, offset, bytes.length - offset, null, (error, written) =>
      resume(error === null ? Effect.succeed(written) : Effect.fail(error)))
  })

/**
 * Appends all of `bytes` to a descriptor from `openDurableAppend` and returns once they are
 * durable: one write (a short one, as a nearly full disk gives, is continued), plus an fdatasync
 * where the platform has no `O_DSYNC`. Uninterruptible: a record is written whole or fails.
 */
export const appendDurably = (fd: number, bytes: Uint8Array): Effect.Effect<void, NodeJS.ErrnoException> => {
  const from = (offset: number): Effect.Effect<void, NodeJS.ErrnoException> =>
    Effect.flatMap(writeOnce(fd, bytes, offset), (written) => {
      const next = offset + written
      if (next < bytes.length) return written === 0 ? Effect.fail(shortWrite()) : from(next)
      return dsync === undefined ? fdatasync(fd) : Effect.void
    })
  return Effect.uninterruptible(from(0))
}

const shortWrite = (): NodeJS.ErrnoException => Object.assign(new Error("the disk took none of the bytes (write returned 0)"), { code: "EIO" })

/** Cuts the file back to `length` (a record cut short goes). */
export const truncate = (fd: number, length: number): Effect.Effect<void, NodeJS.ErrnoException> =>
  Effect.async((resume) => {
    NFS.ftruncate(fd, length, (error) => resume(error === null ? Effect.void : Effect.fail(error)))
  })

/** Closes a descriptor; the error, if any, is the caller's to report. */
export const close = (fd: number): Effect.Effect<void, NodeJS.ErrnoException> =>
  Effect.async((resume) => {
    NFS.close(fd, (error) => resume(error === null ? Effect.void : Effect.fail(error)))
  })

/**
 * Makes a directory's entries durable (a file just created or renamed in it): fsync of the
 * directory, where the platform allows it. Once per new journal or compaction, never per transition.
 */
export const syncDirectory = (dir: string): Effect.Effect<void, NodeJS.ErrnoException> =>
  Effect.acquireUseRelease(
    Effect.async<number | undefined, NodeJS.ErrnoException>((resume) => {
      NFS.open(dir, "r", (error, fd) => resume(error === null ? Effect.succeed(fd) : isUnsupported(error) ? Effect.succeed(undefined) : Effect.fail(error)))
    }),
    (fd) =>
      fd === undefined ? Effect.void : Effect.async<void, NodeJS.ErrnoException>((resume) => {
        NFS.fsync(fd, (error) => resume(error === null || isUnsupported(error) ? Effect.void : Effect.fail(error)))
      }),
    // A read-only descriptor of a directory: closing it cannot lose anything.
    (fd) => (fd === undefined ? Effect.void : Effect.ignore(close(fd)))
  )

/**
 * A directory that cannot be opened or fsynced (Windows, some network file systems): its entries
 * are as durable as the platform makes them (the file's own fsync commits them on Linux's
 * journalling file systems).
 */
const isUnsupported = (error: NodeJS.ErrnoException): boolean =>
  error.code === "EISDIR" || error.code === "EINVAL" || error.code === "EPERM" || error.code === "EACCES"
