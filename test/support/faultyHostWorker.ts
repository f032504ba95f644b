/**
 * A sandbox worker whose host port misbehaves on purpose, for the runtime tests. Opening a file
 * whose name is `blocks` blocks the thread for a minute (as a read from a FIFO or a hung network
 * mount would), `slow` takes 300 ms, and `crashes` ends the thread (as a fatal fault in the
 * engine would). Everything else is node's host port. `buildFaultyWorker` bundles it like
 * scripts/build.mjs bundles the real worker.
 */
import { nodeSandboxHost } from "../../src/layers/sandbox/host.ts"
import { serveRuns } from "../../src/layers/sandbox/worker.ts"

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

serveRuns((environment) => {
  const host = nodeSandboxHost(environment)
  return {
    ...host,
    open: (path, mode) => {
      const name = path.slice(path.lastIndexOf("/") + 1)
      if (name === "blocks") sleep(60_000)
      if (name === "slow") sleep(300)
      if (name === "crashes") process.exit(3)
      return host.open(path, mode)
    }
  }
})
