/**
 * `@effect/cluster` wired for tasks on a Postgres store: its message and runner storage in the
 * store's database (tables `luallm_cluster_*`), runners that talk over TCP sockets with msgpack,
 * and the timings from the config's `cluster` section. A runner listens on `cluster.host` and a
 * port (0: a free one, known once it listens) and registers that address; a client registers
 * nothing and only sends.
 *
 * The engine's storages create their tables when they start, unguarded: two processes starting
 * together on a fresh database race on `CREATE TABLE IF NOT EXISTS` and the loser fails. So they
 * start under the advisory lock the store's own migrations take.
 */
import * as MessageStorage from "@effect/cluster/MessageStorage"
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as Runners from "@effect/cluster/Runners"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as Snowflake from "@effect/cluster/Snowflake"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { SocketServer } from "@effect/platform/SocketServer"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Duration, Effect, Exit, Layer, Option, Redacted, Schema, Scope } from "effect"
import type { AgentConfig } from "../../core/config.ts"

/** The engine's tables: `luallm_cluster_messages`, `_replies`, `_runners`, `_migrations`. */
const tablePrefix = "luallm_cluster"

/** What the engine needs to know from `cluster`; the same shards for every runner and client. */
export const shardingOptions = (cluster: AgentConfig["cluster"]): Partial<ShardingConfig.ShardingConfig["Type"]> => ({
  shardsPerGroup: cluster.shards,
  shardLockExpiration: Duration.seconds(cluster.lease_seconds),
  runnerHealthCheckInterval: Duration.seconds(cluster.health_check_seconds),
  // Stored messages a runner was not told about (sent while no runner held their shard) wait at most this long.
  entityMessagePollInterval: Duration.seconds(2),
  refreshAssignmentsInterval: Duration.seconds(1)
})

/** The store's database for the engine, in a pool of its own. */
export const clusterSql = (url: string) =>
  PgClient.layer({ url: Redacted.make(url), applicationName: "luallm-agent cluster", maxConnections: 8 })

/** `effect` with the lock the store's migrations hold, released however it ends. */
const underMigrationLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const lockScope = yield* Scope.make()
    const connection = yield* Scope.extend(sql.reserve, lockScope)
    const key = "SELECT pg_advisory_lock(hashtextextended('luallm-agent:migrations', 0))"
    yield* connection.executeRaw(key, [])
    return yield* effect.pipe(
      Effect.ensuring(
        Effect.ignore(connection.executeRaw(key.replace("pg_advisory_lock", "pg_advisory_unlock"), [])).pipe(
          Effect.zipRight(Scope.close(lockScope, Exit.void))
        )
      )
    )
  })

/** The engine's message and runner storage in the database. */
const storage = Layer.scopedContext(
  underMigrationLock(
    Effect.gen(function*() {
      const messages = yield* SqlMessageStorage.make({ prefix: tablePrefix })
      const runners = yield* SqlRunnerStorage.make({ prefix: tablePrefix })
      return Context.make(MessageStorage.MessageStorage, messages).pipe(Context.add(RunnerStorage.RunnerStorage, runners))
    })
  )
).pipe(Layer.provide(Snowflake.layerGenerator))

/** The engine's wire: msgpack over TCP sockets. */
const serialization = RpcSerialization.layerMsgPack

/**
 * A runner: listens on `host:port` (a free port when it is 0), registers the address it got,
 * takes its share of the shards, pings the other runners and runs what is sent to it.
 */
export const runnerLayer = (cluster: AgentConfig["cluster"]) => {
  const listening = NodeSocketServer.layer({ host: cluster.host, port: cluster.port })
  const config = Layer.effect(
    ShardingConfig.ShardingConfig,
    Effect.map(SocketServer, (server) => ({
      ...ShardingConfig.defaults,
      ...shardingOptions(cluster),
      runnerAddress: Option.some(
        RunnerAddress.make({ host: cluster.host, port: server.address._tag === "TcpAddress" ? server.address.port : cluster.port })
      )
    }))
  )
  const health = RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(NodeClusterSocket.layerClientProtocol))
  return SocketRunner.layer.pipe(
    Layer.provide([health, NodeClusterSocket.layerClientProtocol]),
    Layer.provideMerge(storage),
    Layer.provideMerge(config),
    Layer.provideMerge(listening),
    Layer.provide(serialization)
  )
}

/** A client: sends to the runners (and reads their answers from the store), runs nothing. */
export const clientLayer = (cluster: AgentConfig["cluster"]) =>
  SocketRunner.layerClientOnly.pipe(
    Layer.provide(NodeClusterSocket.layerClientProtocol),
    Layer.provideMerge(storage),
    Layer.provideMerge(ShardingConfig.layer({ ...shardingOptions(cluster), runnerAddress: Option.none() })),
    Layer.provide(serialization)
  )

const RunnerRow = Schema.Struct({ address: Schema.String, healthy: Schema.Boolean })

/**
 * The runners registered now: those whose heartbeat is younger than the lease (as the engine
 * counts them), healthy or not. Reads the engine's table directly, so asking does not create it.
 */
export const registeredRunners = (cluster: AgentConfig["cluster"]) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = `${tablePrefix}_runners`
    const exists = yield* sql<{ readonly present: boolean }>`SELECT to_regclass(${table}) IS NOT NULL AS present`
    if (exists[0]?.present !== true) return []
    const rows = yield* sql`SELECT address, healthy FROM ${sql(table)}
      WHERE last_heartbeat > NOW() - make_interval(secs => ${cluster.lease_seconds}) ORDER BY address`
    return yield* Schema.decodeUnknown(Schema.Array(RunnerRow))(rows)
  })
