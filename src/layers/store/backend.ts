/**
 * Which store backs `State`, `Audit` and `AuditReader`: the config's `store` (or `--store`).
 * `"file"` needs nothing here (each service builds its file store); a `postgres://` URL opens
 * one connection pool, runs the migrations, and gives all three services over it. `StateLive`,
 * `AuditLive` and `AuditReaderLive` each provide `StoreBackendLive`, and a layer used twice in
 * one build is built once, so they share the pool.
 */
import { Context, Data, Effect, Layer } from "effect"
import { describeStore, postgresUrl } from "../../core/config.ts"
import type { AuditReaderShape, AuditShape } from "../Audit.ts"
import { AppConfig } from "../Config.ts"
import type { StateShape } from "../State.ts"

export class StoreUnavailable extends Data.TaggedError("StoreUnavailable")<{ readonly url: string; readonly reason: string }> {
  override get message() {
    return `Could not open the task store ${this.url}: ${this.reason}. Check that the server runs and that \`store\` in the config (or --store) names it; \`store: "file"\` keeps tasks in state_dir instead.`
  }
}

/** The three services over one Postgres database. */
export interface PostgresStore {
  readonly state: StateShape
  readonly audit: AuditShape
  readonly reader: AuditReaderShape
}

export type StoreBackendShape =
  | { readonly _tag: "File" }
  | { readonly _tag: "Postgres"; readonly url: string; readonly store: PostgresStore }

export class StoreBackend extends Context.Tag("StoreBackend")<StoreBackend, StoreBackendShape>() {}

export const StoreBackendLive: Layer.Layer<StoreBackend, StoreUnavailable, AppConfig> = Layer.scoped(
  StoreBackend,
  Effect.gen(function*() {
    const { config } = yield* AppConfig
    const url = postgresUrl(config.store)
    if (url === null) return { _tag: "File" } as const
    // Loaded only for a Postgres store: the driver would otherwise be a large part of start-up.
    const postgres = yield* Effect.promise(() => import("./postgres.ts"))
    const store = yield* postgres.makePostgresStore({
      url,
      // A running task holds a connection for its lock; the rest serve saves and reads.
      maxConnections: config.limits.max_concurrent_tasks + 4
    })
    return { _tag: "Postgres", url: describeStore(url), store } as const
  })
)
