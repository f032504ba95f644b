/**
 * Where the installed package lives, to find its shipped `skills/` (and the CLI's fixtures, the sandbox's worker bundle)
 * whether the code runs from the TypeScript sources, the bundled `dist/cli.cjs`, or the
 * library `dist/index.js` inside an app's node_modules. Found from this module's own URL,
 * never from the working directory: a `skills/` folder of the app's would otherwise be
 * trusted as shipped skills.
 */
import { existsSync, readFileSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const isOurPackage = (dir: string): boolean => {
  const manifest = join(dir, "package.json")
  if (!existsSync(manifest)) return false
  try {
    const parsed: unknown = JSON.parse(readFileSync(manifest, "utf8"))
    return typeof parsed === "object" && parsed !== null && "name" in parsed && parsed.name === "luallm-agent"
  } catch {
    return false
  }
}

/**
 * The nearest directory above this module with our package.json. Code that an app bundled
 * into its own file has none: then it is the module's own directory, whose `skills/` (if
 * the app copied ours there) is the one next to the code.
 */
const findPackageRoot = (): string => {
  const start = dirname(fileURLToPath(import.meta.url))
  for (let dir = start;; dir = dirname(dir)) {
    if (isOurPackage(dir)) return dir
    if (dirname(dir) === dir) return start
  }
}

export const packageRoot: string = findPackageRoot()
export const builtinSkillsDir: string = join(packageRoot, "skills")

/**
 * Where `bin/luallm-agent.cjs` keeps V8's code cache of the bundle (the same rule as its
 * `cacheDirectory`): compiled code the next start of the CLI runs, so no skill may write there.
 */
export const compileCacheDirectory = (env: NodeJS.ProcessEnv = process.env): string => {
  const named = env["LUALLM_AGENT_COMPILE_CACHE"]
  if (named !== undefined && named !== "") return resolve(named)
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined
  return join(tmpdir(), `luallm-agent-compile-cache-${uid ?? userInfo().username}`)
}
