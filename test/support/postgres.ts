/**
 * A real PostgreSQL server for tests, benches and the soak: `initdb` in a fresh temp dir, then
 * `pg_ctl start` on 127.0.0.1 and a free port (its socket in that dir too), stopped and removed
 * when the scope closes. Never a mock. The binaries are Debian's (`/usr/lib/postgresql/<v>/bin`,
 * or `$LUALLM_AGENT_PG_BIN`); `initdb` refuses to run as root, so as root the cluster belongs to
 * the `postgres` user and its commands run through `runuser`.
 *
 * `postgresMissing` says why no server can start here (no binaries), so a suite can skip with
 * that reason; `.ci/run` installs the `postgresql` package, so CI never skips.
 */
import { Data, Effect, Schedule } from "effect"
import { spawnSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"

export class PostgresStartFailed extends Data.TaggedError("PostgresStartFailed")<{ readonly step: string; readonly output: string }> {
  override get message() {
    return `Could not start the test PostgreSQL server: ${this.step} failed:\n${this.output}`
  }
}

/** The directory with `initdb`, `pg_ctl` and `psql`, if any. */
export const postgresBinDir = (): string | undefined => {
  const fromEnv = process.env["LUALLM_AGENT_PG_BIN"]
  if (fromEnv !== undefined && existsSync(join(fromEnv, "initdb"))) return fromEnv
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  return versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "initdb")))
}

/** Why no server can start here, or `undefined` when one can. */
export const postgresMissing: string | undefined = postgresBinDir() === undefined
  ? "no PostgreSQL binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or $LUALLM_AGENT_PG_BIN; install the `postgresql` package (`.ci/run` does)"
  : undefined

const isRoot = (): boolean => userInfo().uid === 0

/** Runs a server binary as the cluster's owner: `postgres` when we are root, else ourselves. */
const runAsOwner = (bin: string, args: ReadonlyArray<string>, step: string) =>
  Effect.suspend(() => {
    const [command, argv] = isRoot() ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, [...args]]
    const result = spawnSync(command, argv, { encoding: "utf8", timeout: 60_000 })
    return result.status === 0
      ? Effect.succeed(result.stdout)
      : Effect.fail(new PostgresStartFailed({ step, output: `${result.stdout}\n${result.stderr}\n${result.error?.message ?? ""}`.trim() }))
  })

/** A port nothing listens on right now (the server may still lose a race for it: start retries). */
const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

export interface PostgresServer {
  readonly port: number
  /** `postgres://postgres@127.0.0.1:<port>/<database>` */
  readonly url: (database?: string) => string
  /** A new empty database, for one test; its URL. */
  readonly createDatabase: Effect.Effect<string, PostgresStartFailed>
}

export interface PostgresOptions {
  /** Durable commits (the default, for benches); tests may turn it off, since no test crashes the machine. */
  readonly fsync?: boolean
}

/** Starts a server for the scope; stops it and removes its directory when the scope closes. */
export const startPostgres = (options: PostgresOptions = {}) =>
  Effect.gen(function*() {
    const bin = postgresBinDir()
    if (bin === undefined) return yield* new PostgresStartFailed({ step: "finding the binaries", output: postgresMissing ?? "" })
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "luallm-agent-pg-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    if (isRoot()) {
      const owner = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" })
      const group = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" })
      chownSync(dir, Number(owner.stdout.trim()), Number(group.stdout.trim()))
    }
    const data = join(dir, "data")
    yield* runAsOwner(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
    const settings = [
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${dir}`,
      "-c max_connections=300",
      `-c fsync=${options.fsync === false ? "off" : "on"}`,
      `-c synchronous_commit=${options.fsync === false ? "off" : "on"}`
    ]
    const start = Effect.gen(function*() {
      const port = yield* freePort
      yield* runAsOwner(join(bin, "pg_ctl"), ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "-o", `${settings.join(" ")} -p ${port}`, "start"], "pg_ctl start").pipe(
        Effect.mapError((error) => new PostgresStartFailed({ step: error.step, output: `${error.output}\n${readLog(dir)}` }))
      )
      return port
    })
    // Another process may take the free port between the look and the start.
    const port = yield* start.pipe(Effect.retry(Schedule.recurs(3)))
    yield* Effect.addFinalizer(() => Effect.ignore(runAsOwner(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], "pg_ctl stop")))
    const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`
    let databases = 0
    const createDatabase = Effect.suspend(() => {
      const name = `test_${process.pid}_${++databases}`
      return Effect.as(runAsOwner(join(bin, "psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-q", "-c", `CREATE DATABASE ${name}`], "CREATE DATABASE"), url(name))
    })
    return { port, url, createDatabase } satisfies PostgresServer
  })

const readLog = (dir: string): string => {
  try {
    return readFileSync(join(dir, "server.log"), "utf8").slice(-2000)
  } catch {
    return "(no server log)"
  }
}
