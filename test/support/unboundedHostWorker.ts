/**
 * A sandbox worker on a host without util-linux's prlimit: node's host port, except that it
 * cannot bound a command's memory. `exec` must refuse every command there.
 */
import { nodeSandboxHost } from "../../src/layers/sandbox/host.ts"
import { serveRuns } from "../../src/layers/sandbox/worker.ts"

serveRuns((environment) => ({ ...nodeSandboxHost(environment), boundsCommands: false }))
