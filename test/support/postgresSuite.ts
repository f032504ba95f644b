/** The test PostgreSQL server (test/support/postgres.ts) for one vitest file. */
import { afterAll, beforeAll } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { type PostgresOptions, postgresMissing, type PostgresServer, startPostgres } from "./postgres.ts"

export { postgresMissing } from "./postgres.ts"

/**
 * One server for a vitest file: started before its tests, stopped after. `server()` gives it to
 * a test; with `postgresMissing` set, nothing starts and the suite should be skipped.
 */
export const postgresForSuite = (options: PostgresOptions = {}) => {
  const holder: { scope?: Scope.CloseableScope; server?: PostgresServer } = {}
  beforeAll(async () => {
    if (postgresMissing !== undefined) return
    const scope = await Effect.runPromise(Scope.make())
    holder.scope = scope
    holder.server = await Effect.runPromise(Scope.extend(startPostgres(options), scope))
  }, 120_000)
  afterAll(async () => {
    if (holder.scope !== undefined) await Effect.runPromise(Scope.close(holder.scope, Exit.void))
  })
  return {
    server: Effect.suspend(() =>
      holder.server === undefined ? Effect.dieMessage("the test PostgreSQL server did not start (see beforeAll)") : Effect.succeed(holder.server)
    )
  }
}
