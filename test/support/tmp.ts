/** Temporary directories for tests, removed when the test's scope closes. */
import { NodeContext } from "@effect/platform-node"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { realpathSync } from "node:fs"

/** A fresh temp dir (its real path, so symlink checks compare like with like). */
export const tempDir = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const dir = yield* fs.makeTempDirectoryScoped({ prefix: "luallm-agent-test-" })
  return realpathSync(dir)
})

export const TestPlatform = NodeContext.layer
