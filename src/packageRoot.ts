/**
 * Where the installed package lives, to find the shipped `skills/` and fixtures whether we
 * run from the TypeScript sources (tests) or from the bundled `dist/cli.cjs`; the sandbox
 * keeps skills from changing it (SPEC part 18).
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

const findPackageRoot = (): string | null => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (isOurPackage(dir)) return dir
    const parent = dirname(dir)
    if (parent === dir) return null
    dir = parent
  }
}

/** The directory of luallm-agent's own package.json, or null when this copy has none around it. */
export const ownPackageRoot: string | null = findPackageRoot()
export const packageRoot: string = ownPackageRoot ?? process.cwd()
export const builtinSkillsDir: string = join(packageRoot, "skills")
