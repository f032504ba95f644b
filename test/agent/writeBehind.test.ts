import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Ref } from "effect"
import { makeWriteBehind } from "../../src/agent/writeBehind.ts"

describe("write-behind saver", () => {
  it.scoped("coalesces snapshots offered while a save runs and flushes the last one", () =>
    Effect.gen(function*() {
      const saved = yield* Ref.make<ReadonlyArray<number>>([])
      const firstStarted = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const saver = yield* makeWriteBehind((n: number) =>
        Effect.gen(function*() {
          if (n === 1) {
            yield* Deferred.succeed(firstStarted, undefined)
            yield* Deferred.await(release)
          }
          yield* Ref.update(saved, (all) => [...all, n])
        })
      )
      yield* saver.offer(1)
      yield* Deferred.await(firstStarted)
      // While snapshot 1 is being saved, 2, 3 and 4 arrive: only the latest needs saving.
      yield* saver.offer(2)
      yield* saver.offer(3)
      yield* saver.offer(4)
      yield* Deferred.succeed(release, undefined)
      yield* saver.flush
      expect(yield* Ref.get(saved)).toEqual([1, 4])
    }))

  it.scoped("a failed save fails the next offer and the flush, so no error is lost", () =>
    Effect.gen(function*() {
      const saver = yield* makeWriteBehind((n: number) => (n === 2 ? Effect.fail(`disk full at ${n}`) : Effect.void))
      yield* saver.offer(1)
      yield* saver.flush
      yield* saver.offer(2)
      expect(yield* Effect.flip(saver.flush)).toBe("disk full at 2")
      expect(yield* Effect.flip(saver.offer(3))).toBe("disk full at 2")
    }))

  it.scoped("flush with nothing pending saves nothing", () =>
    Effect.gen(function*() {
      const count = yield* Ref.make(0)
      const saver = yield* makeWriteBehind(() => Ref.update(count, (n) => n + 1))
      yield* saver.flush
      expect(yield* Ref.get(count)).toBe(0)
    }))
})
