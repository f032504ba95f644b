/**
 * Where the installed package lives, to find the shipped `skills/`, the fixtures and the
 * sandbox's worker bundle whether we run from the TypeScript sources (tests), the bundled
 * `dist/cli.cjs` or the library's `dist/index.js`. The shell and the layers both use it.
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
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

const findPackageRoot = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (isOurPackage(dir)) return dir
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
}

export const packageRoot: string = findPackageRoot()
export const builtinSkillsDir: string = join(packageRoot, "skills")
