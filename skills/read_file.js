/* @skill {
  "name": "read_file",
  "version": "1.0.0",
  "description": "Reads a UTF-8 text file and returns its text. It declares every path (\"/**\") on purpose: reading the file the plan names is its whole job, so the user's allowed_paths alone decides what it may read; a narrower declaration could only duplicate that bound or contradict it.",
  "dependencies": [],
  "paths": ["/**"],
  "urls": [],
  "public_functions": ["run"],
  "args": {
    "path": "string: the file to read (absolute, ~/…, or relative to the agent's working directory); it must lie inside allowed_paths"
  }
} */

/**
 * `io` is the sandbox's `fs`, or in tests anything with the same `readFile`. Ordinary read
 * errors (no such file, a directory, too large) come back with the path; a path outside the
 * allowed ones is refused by the sandbox itself, which ends the run.
 */
export function readFileWith(io, args) {
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new TypeError(`expected arguments like {"path": "~/notes.txt"}, got ${JSON.stringify(args)}`)
  }
  const { path } = args
  if (typeof path !== "string" || path.trim() === "") {
    throw new TypeError(`"path" must be a non-empty string naming a file, got ${JSON.stringify(path)}`)
  }
  try {
    return io.readFile(path)
  } catch (error) {
    throw new Error(`cannot read ${path}: ${error.message}`)
  }
}

export function run(args) {
  return readFileWith(fs, args)
}
