/**
 * Per-task state a store keeps while it works on a task (an open journal, the last saved
 * `seq`), with a semaphore per task: saves of one task are ordered, saves of different tasks
 * run side by side. A slot is dropped when its task's lock is released or the task removed.
 */
import { Effect, Option, Ref, SynchronizedRef } from "effect"

export interface TaskSlot<S> {
  readonly value: Ref.Ref<Option.Option<S>>
  readonly lock: Effect.Semaphore
}

export const makeTaskSlots = <S>() =>
  Effect.gen(function*() {
    const slots = yield* SynchronizedRef.make(new Map<string, TaskSlot<S>>())

    const slotFor = (id: string) =>
      SynchronizedRef.modifyEffect(slots, (all) => {
        const existing = all.get(id)
        if (existing !== undefined) return Effect.succeed([existing, all] as const)
        return Effect.map(Effect.zip(Ref.make(Option.none<S>()), Effect.makeSemaphore(1)), ([value, lock]) => {
          const slot: TaskSlot<S> = { value, lock }
          return [slot, new Map(all).set(id, slot)] as const
        })
      })

    /** Runs `f` with the task's slot, after the task's earlier work. */
    const withSlot = <A, E, R>(id: string, f: (value: Ref.Ref<Option.Option<S>>) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(slotFor(id), (slot) => slot.lock.withPermits(1)(f(slot.value)))

    /** Forgets the task's slot, after `release` has run on its value (when it has one). */
    const drop = <E, R>(id: string, release: (value: S) => Effect.Effect<void, E, R>) =>
      Effect.gen(function*() {
        const slot = (yield* SynchronizedRef.get(slots)).get(id)
        if (slot === undefined) return
        yield* slot.lock.withPermits(1)(
          Effect.flatMap(Ref.getAndSet(slot.value, Option.none()), Option.match({ onNone: () => Effect.void, onSome: release }))
        )
        yield* SynchronizedRef.update(slots, (all) => {
          const rest = new Map(all)
          if (rest.get(id) === slot) rest.delete(id)
          return rest
        })
      })

    const ids = Effect.map(SynchronizedRef.get(slots), (all) => [...all.keys()])

    return { withSlot, drop, ids }
  })
