/**
 * Pure path helpers shared by the config's `isPathAllowed` and the sandbox's `fs`.
 * Paths here are POSIX-style absolute strings; resolving symlinks is the caller's job
 * (it needs the file system), this module only normalises and matches.
 *
 * Glob semantics (SPEC part 11): `dir/*` matches the entries of `dir`, `dir/**` matches
 * everything below `dir` and `dir` itself, `dir` matches only `dir`. Inside a segment,
 * `*` is any run of characters but `/` and `?` is one such character.
 */

/** Replaces a leading `~` (alone or followed by `/`) with `home`. */
export const expandHome = (path: string, home: string): string =>
  path === "~" ? home : path.startsWith("~/") ? `${trimTrailingSlash(home)}/${path.slice(2)}` : path

const trimTrailingSlash = (path: string): string => (path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path)

/**
 * Makes `path` absolute against `cwd` (after `~` expansion) and removes `.`, `..` and
 * repeated slashes lexically. `..` never climbs above `/`.
 */
export const normalizePath = (path: string, cwd: string, home: string): string => {
  const expanded = expandHome(path, home)
  const absolute = expanded.startsWith("/") ? expanded : `${cwd}/${expanded}`
  const out: Array<string> = []
  for (const segment of absolute.split("/")) {
    if (segment === "" || segment === ".") continue
    if (segment === "..") out.pop()
    else out.push(segment)
  }
  return `/${out.join("/")}`
}

/** True when `path` contains a `..` segment: a refusal reason worth naming on its own. */
export const hasParentSegment = (path: string): boolean => path.includes("..") && path.split(/[\\/]/).includes("..")

const escapeRegExp = (text: string): string => text.replace(/[.+^${}()|[\]\\]/g, "\\$&")

const segmentToRegExp = (segment: string): string =>
  escapeRegExp(segment).replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")

/** A memo of pure results (same glob, same RegExp), bounded so a long-lived process cannot grow it. */
const compiled = new Map<string, RegExp>()
const maxCompiled = 1024

/** Compiles an absolute, normalised glob to an anchored regular expression (memoised). */
export const globToRegExp = (glob: string): RegExp => {
  const cached = compiled.get(glob)
  if (cached !== undefined) return cached
  const segments = glob.split("/").filter((s) => s !== "")
  let source = ""
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1
    if (segment === "**") {
      // `a/**` matches `a` itself and everything below it; `a/**/b` matches `a/b`, `a/x/y/b`.
      source += last ? "(?:/.*)?" : "(?:/[^/]+)*"
    } else {
      source += `/${segmentToRegExp(segment)}`
    }
  })
  const regexp = new RegExp(`^${source === "" ? "/" : source}$`)
  if (compiled.size >= maxCompiled) compiled.clear()
  compiled.set(glob, regexp)
  return regexp
}

/** True when `path` (absolute, normalised) matches `glob` (absolute, normalised). */
export const matchesGlob = (path: string, glob: string): boolean => globToRegExp(glob).test(path)

/** True when `path` matches at least one of `globs`. */
export const matchesAnyGlob = (path: string, globs: ReadonlyArray<string>): boolean =>
  globs.some((glob) => matchesGlob(path, glob))

/**
 * The longest leading part of a glob that holds no wildcard: the directory whose real path
 * must be resolved so that a pattern and a path are compared in the same (symlink-free) space.
 */
export const globBase = (glob: string): string => {
  const segments = glob.split("/")
  const index = segments.findIndex((s) => /[*?]/.test(s))
  if (index === -1) return glob
  const base = segments.slice(0, index).join("/")
  return base === "" ? "/" : base
}
