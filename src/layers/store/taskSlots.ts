/**
 * Per-task state a store keeps while it works on a task (an open journal, the last saved
 * `seq`), with a semaphore per task: saves of one task are ordered, saves of different tasks
 * run side by side. A slot is dropped when its task's lock is released or the task removed.
 */
import { Effect, Option, Ref } from "effect"

export interface TaskSlot<S> {
  readonly value: Ref.Ref<Option.Option<S>>
  readonly lock: Effect.Semaphore
}

export const makeTaskSlots = <S>() =>
  Effect.sync(() => {
    // Read and changed only inside single synchronous steps, so no two fibers interleave in it;
    // a slot is made on a save's path, without a second lock around the map.
    const slots = new Map<string, TaskSlot<S>>()

    const slotFor = (id: string) =>
      Effect.sync(() => {
        const existing = slots.get(id)
        if (existing !== undefined) return existing
        const slot: TaskSlot<S> = { value: Ref.unsafeMake(Option.none<S>()), lock: Effect.unsafeMakeSemaphore(1) }
        slots.set(id, slot)
        return slot
      })

    /** Runs `f` with the task's slot, after the task's earlier work. */
    const withSlot = <A, E, R>(id: string, f: (value: Ref.Ref<Option.Option<S>>) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(slotFor(id), (slot) => slot.lock.withPermits(1)(f(slot.value)))

    /** Forgets the task's slot, after `release` has run on its value (when it has one). */
    const drop = <E, R>(id: string, release: (value: S) => Effect.Effect<void, E, R>) =>
      Effect.gen(function*() {
        const slot = slots.get(id)
        if (slot === undefined) return
        yield* slot.lock.withPermits(1)(
          Effect.flatMap(Ref.getAndSet(slot.value, Option.none()), Option.match({ onNone: () => Effect.void, onSome: release }))
        )
        if (slots.get(id) === slot) slots.delete(id)
      })

    const ids = Effect.sync(() => [...slots.keys()])

    return { withSlot, drop, ids }
  })
