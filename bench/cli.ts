/**
 * CLI start: how long `luallm-agent` takes to start, answer and exit, against `node -e 0`, the
 * floor every Node CLI pays. It runs the bundle users run (`bin/luallm-agent.cjs` → dist/cli.cjs),
 * which `npm run bench` builds first. The child runs with `spawnSync`, so nothing else in this
 * process competes with it while the clock runs.
 */
import { FileSystem, Path } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { packageRoot } from "../src/packageRoot.ts"
import { interleavedMedians, ratioRow } from "./measure.ts"
import type { BenchRow, BenchSize } from "./types.ts"

/** Runs `node …args` to the end; a failed run is a broken build, not a measurement. */
const node = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  Effect.suspend(() => {
    const run = spawnSync(process.execPath, args, { cwd: packageRoot, env, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
    return run.status === 0
      ? Effect.void
      : Effect.dieMessage(`\`node ${args.join(" ")}\` exited with ${run.status ?? run.signal}: ${run.stderr || run.error?.message}`)
  })

export const cliBench = (size: BenchSize): Effect.Effect<ReadonlyArray<BenchRow>> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const bin = path.join(packageRoot, "bin", "luallm-agent.cjs")
    const bundle = path.join(packageRoot, "dist", "cli.cjs")
    if (!(yield* fs.exists(bundle))) {
      return yield* Effect.dieMessage(`${bundle} is missing: run \`npm run build\` first (\`npm run bench\` does).`)
    }
    // The build fills the bin's compile cache; each cold run gets an empty one of its own, as
    // after a cleared temp dir or a Node upgrade.
    const cacheRoot = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-cache-" })
    const stateDir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-bench-state-" })
    let coldRuns = 0
    const cold = Effect.suspend(() =>
      node([bin, "--help"], { ...process.env, LUALLM_AGENT_COMPILE_CACHE: path.join(cacheRoot, `run-${++coldRuns}`) })
    )

    const commands = {
      baseline: node(["-e", "0"]),
      help: node([bin, "--help"]),
      // Reads the config and the state directory; `stateDir` holds no task.
      status: node([bin, "status"], { ...process.env, LUALLM_AGENT_STATE_DIR: stateDir }),
      cold
    }
    if (size === "full") yield* Effect.all([commands.help, commands.status]) // warm the compile and OS file caches
    const timings = yield* interleavedMedians(commands, size === "full" ? 10 : 1)

    const row = (figure: string, value: number) =>
      ratioRow({ figure, value, baseline: timings.baseline, baselineLabel: "node -e 0", unit: "ms", target: 4 })
    return [
      row("CLI start: luallm-agent --help", timings.help),
      row("CLI start: luallm-agent status (no task)", timings.status),
      row("CLI start: --help with an empty compile cache (informational)", timings.cold)
    ]
  }).pipe(Effect.scoped, Effect.provide(NodeContext.layer), Effect.orDie)
