/**
 * The shared memory a run's audit events cross from the worker to the main thread in.
 *
 * Why shared memory rather than a message per event: the main thread terminates a worker at the
 * deadline, and every event the run produced up to then must still be written. Events in this
 * buffer are there whatever happens to the thread that wrote them (the main thread reads them
 * after terminating it, even from a thread stuck in a system call), and writing one costs no
 * message and no wake-up of the main thread, which reads the buffer now and then during a run
 * and once at its end.
 *
 * Layout: three 32-bit counters (the end of the committed frames, the events and the bytes
 * written), two 64-bit ones (the events and bytes held back), then the frames. A frame is a
 * 32-bit length and that many bytes of UTF-8 JSON, `[event, data]`. The writer stores a frame,
 * then publishes its end (an atomic store): the reader never sees half a frame. The main thread
 * resets the counters before each run, while the worker is idle.
 */
import type { AuditBudget } from "./protocol.ts"

/** Audit events a run held back because its budget was spent, and their bytes. */
export interface Dropped {
  readonly events: number
  readonly bytes: number
}

const COMMITTED = 0
const WRITTEN_EVENTS = 1
const WRITTEN_BYTES = 2
const DROPPED_EVENTS = 0
const DROPPED_BYTES = 1
const HEADER_BYTES = 32
const FRAME_PREFIX = 4

/**
 * What one event costs against the budget: the bytes of its frame plus this much, about what its
 * line in the log adds (`ts`, `task_id`, the keys, the newline).
 */
const AUDIT_LINE_OVERHEAD = 100

/** A buffer for the audit events of runs that may write up to `capacity` bytes of frames. */
export const makeAuditBuffer = (capacity: number): SharedArrayBuffer => new SharedArrayBuffer(HEADER_BYTES + capacity)

interface Views {
  readonly counts: Int32Array
  readonly dropped: BigInt64Array
  readonly bytes: Uint8Array
  readonly frames: DataView
}

const views = (buffer: SharedArrayBuffer): Views => ({
  counts: new Int32Array(buffer, 0, 3),
  dropped: new BigInt64Array(buffer, 16, 2),
  bytes: new Uint8Array(buffer, HEADER_BYTES),
  frames: new DataView(buffer, HEADER_BYTES)
})

/**
 * The worker's side, for one run: appends events while the run's budget lasts, and counts the
 * ones it holds back. The one refusal that ends a run is always kept while it fits: it says why
 * the run stopped.
 */
export const auditWriter = (buffer: SharedArrayBuffer, budget: AuditBudget) => {
  const { bytes, counts, dropped, frames } = views(buffer)
  const encoder = new TextEncoder()
  let committed = Atomics.load(counts, COMMITTED)
  let events = 0
  let spent = 0
  const drop = (size: number) => {
    Atomics.add(dropped, DROPPED_EVENTS, 1n)
    Atomics.add(dropped, DROPPED_BYTES, BigInt(size))
  }
  return (event: string, data: Readonly<Record<string, unknown>>): void => {
    const payload = `[${JSON.stringify(event)},${JSON.stringify(data)}]`
    const start = committed + FRAME_PREFIX
    // Encoded in place first: a frame that is not committed is simply written over.
    const { read, written } = start <= bytes.length ? encoder.encodeInto(payload, bytes.subarray(start)) : { read: 0, written: 0 }
    const size = AUDIT_LINE_OVERHEAD + (read < payload.length ? payload.length : written)
    const overBudget = events >= budget.events || spent + size > budget.bytes
    if (read < payload.length || (overBudget && event !== "sandbox.refused")) return drop(size)
    frames.setUint32(committed, written)
    committed = start + written
    events++
    spent += size
    Atomics.store(counts, WRITTEN_EVENTS, events)
    Atomics.store(counts, WRITTEN_BYTES, spent)
    Atomics.store(counts, COMMITTED, committed)
  }
}

/** The main thread's side: reads what was committed since the last read. */
export const auditReader = (buffer: SharedArrayBuffer) => {
  const { bytes, counts, dropped, frames } = views(buffer)
  const decoder = new TextDecoder()
  let read = 0
  return {
    /** Clears the buffer for the next run; only while no worker writes to it. */
    reset: (): void => {
      for (const index of [COMMITTED, WRITTEN_EVENTS, WRITTEN_BYTES]) Atomics.store(counts, index, 0)
      for (const index of [DROPPED_EVENTS, DROPPED_BYTES]) Atomics.store(dropped, index, 0n)
      read = 0
    },
    /** The frames committed since the last call, as JSON text each (`[event, data]`). */
    take: (): ReadonlyArray<string> => {
      const end = Atomics.load(counts, COMMITTED)
      const taken: Array<string> = []
      while (read + FRAME_PREFIX <= end) {
        const length = frames.getUint32(read)
        taken.push(decoder.decode(bytes.slice(read + FRAME_PREFIX, read + FRAME_PREFIX + length)))
        read += FRAME_PREFIX + length
      }
      return taken
    },
    /** The events the run wrote, and the bytes they count for against its budget. */
    written: (): { readonly events: number; readonly bytes: number } => ({
      events: Atomics.load(counts, WRITTEN_EVENTS),
      bytes: Atomics.load(counts, WRITTEN_BYTES)
    }),
    dropped: (): Dropped => ({
      events: Number(Atomics.load(dropped, DROPPED_EVENTS)),
      bytes: Number(Atomics.load(dropped, DROPPED_BYTES))
    })
  }
}

export type AuditReader = ReturnType<typeof auditReader>
