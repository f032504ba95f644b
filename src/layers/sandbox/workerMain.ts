/**
 * The entry of a sandbox worker thread, bundled by `scripts/build.mjs` into
 * `dist/sandboxWorker.cjs`, which `pool.ts` starts: runs on node's file system and processes.
 */
import { nodeSandboxHost } from "./host.ts"
import { serveRuns } from "./worker.ts"

serveRuns(nodeSandboxHost)
