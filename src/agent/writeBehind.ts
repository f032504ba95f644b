/**
 * Saves the latest of a stream of snapshots in the background, coalescing the ones that arrive
 * while a save (tmp file + fsync + rename) is running. Graph execution offers a snapshot after
 * every node change and goes on at once; `flush` waits until the last snapshot is on disk.
 *
 * Why it is safe: a node's effects happen before its completion is recorded anyway, so a crash
 * between the two re-runs that node on resume with or without write-behind (at-least-once);
 * what write-behind changes is only how many node changes one fsync covers. A failed save is
 * kept and fails the next `offer` or `flush`, so no error is lost.
 */
import { Effect, Option, Queue, Ref } from "effect"

export interface WriteBehind<A, E, R> {
  /** Records `snapshot` as the one to save next; fails if an earlier save failed. */
  readonly offer: (snapshot: A) => Effect.Effect<void, E>
  /** Saves what is still pending and waits for it; fails if any save failed. */
  readonly flush: Effect.Effect<void, E, R>
}

export const makeWriteBehind = <A, E, R>(save: (snapshot: A) => Effect.Effect<void, E, R>) =>
  Effect.gen(function*() {
    const latest = yield* Ref.make(Option.none<A>())
    const failure = yield* Ref.make(Option.none<E>())
    const wake = yield* Queue.sliding<void>(1)
    // Held while a snapshot is taken and saved, so `flush` never overlaps a background save.
    const saving = yield* Effect.makeSemaphore(1)

    const savePending = saving.withPermits(1)(
      Effect.gen(function*() {
        const next = yield* Ref.getAndSet(latest, Option.none())
        if (Option.isNone(next) || Option.isSome(yield* Ref.get(failure))) return
        yield* save(next.value).pipe(Effect.catchAll((error) => Ref.set(failure, Option.some(error))))
      })
    )
    // Woken, the saver first lets the fibers that are ready run on (the graph goes on to its next
    // node and its LLM call), then encodes and saves while they wait.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wake), Effect.zipRight(Effect.yieldNow(), savePending))))

    const failIfFailed = Effect.flatMap(Ref.get(failure), Option.match({ onNone: () => Effect.void, onSome: Effect.fail }))

    return {
      offer: (snapshot) =>
        Effect.zipRight(failIfFailed, Effect.zipRight(Ref.set(latest, Option.some(snapshot)), Queue.offer(wake, undefined))),
      flush: Effect.zipRight(savePending, failIfFailed)
    } satisfies WriteBehind<A, E, R>
  })
