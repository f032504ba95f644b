/**
 * Where `generate` may write the model's code: a path inside `allowed_paths` (resolved the way
 * skills' paths are: `~`, `..` and symlinks, by `AppConfig.checkPath`), never inside what the
 * agent's trust rests on (`trustRoots`, the sandbox's own list: config files, state, audit log,
 * skill directories, luallm's files, the package), and never over an existing file unless
 * `--force` says so. The model's answer
 * is untrusted text; the human chose the path, but a typo or a symlink must not turn it into
 * a write over the agent's own files.
 */
import { FileSystem } from "@effect/platform"
import { Data, Effect } from "effect"
import { AppConfig } from "../layers/Config.ts"
import { trustRootsOf } from "../layers/Sandbox.ts"
import { withinTrustRoot } from "../layers/sandbox/paths.ts"

export class OutputNotAllowed extends Data.TaggedError("OutputNotAllowed")<{
  readonly path: string
  readonly resolved: string
  readonly allowed: ReadonlyArray<string>
}> {
  override get message() {
    const allowed = this.allowed.length === 0 ? "allowed_paths is empty" : `allowed_paths is ${this.allowed.join(", ")}`
    const dir = this.resolved.replace(/\/[^/]*$/, "") || "/"
    return `generate writes only inside allowed_paths, and ${this.path} (${this.resolved}) is not inside them: ${allowed}. ` +
      `Choose a path inside them, or add its directory to allowed_paths in your config: "${dir}/**".`
  }
}

export class OutputProtected extends Data.TaggedError("OutputProtected")<{
  readonly path: string
  readonly resolved: string
  /** The config key (or role) of the protected path, and the path itself. */
  readonly root: string
}> {
  override get message() {
    return `generate never writes inside ${this.root}, which luallm-agent's trust rests on, whatever allowed_paths says: ${this.path} is ${this.resolved}. Choose a path outside it.`
  }
}

export class OutputExists extends Data.TaggedError("OutputExists")<{ readonly path: string }> {
  override get message() {
    return `${this.path} already exists, so nothing was written. Pass --force to replace it, or choose another path.`
  }
}

export type OutputPathError = OutputNotAllowed | OutputProtected | OutputExists

/**
 * The real path `generate` writes `out` to, after the checks above; `force` allows replacing
 * an existing file. Runs before the model is asked, so a refused path costs no model call.
 */
export const checkOutputPath = (out: string, force: boolean) =>
  Effect.gen(function*() {
    const app = yield* AppConfig
    const fs = yield* FileSystem.FileSystem
    const verdict = yield* app.checkPath(out, app.config.allowed_paths)
    // The same roots the sandbox keeps every skill from writing.
    for (const root of trustRootsOf(app)) {
      const { resolved } = yield* app.checkPath(root.path, [])
      if (withinTrustRoot(verdict.resolved, resolved)) {
        return yield* new OutputProtected({ path: out, resolved: verdict.resolved, root: `${root.key} (${resolved})` })
      }
    }
    if (!verdict.allowed) return yield* new OutputNotAllowed({ path: out, resolved: verdict.resolved, allowed: app.config.allowed_paths })
    if (!force && (yield* fs.exists(verdict.resolved).pipe(Effect.orElseSucceed(() => false)))) {
      return yield* new OutputExists({ path: verdict.resolved })
    }
    return verdict.resolved
  })
