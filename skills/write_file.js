/* @skill {
  "name": "write_file",
  "version": "1.0.0",
  "description": "Writes text to a file as UTF-8 and returns {path, bytes}. It refuses to replace an existing file unless overwrite is true, and creates missing parent directories (the sandbox checks each write, so directories appear only inside allowed_paths). It declares every path (\"/**\") on purpose: writing where the plan says is its whole job, so the user's allowed_paths alone bounds it; luallm-agent's own directories stay unwritable whatever the globs say.",
  "dependencies": [],
  "paths": ["/**"],
  "urls": [],
  "public_functions": ["run"],
  "args": {
    "path": "string: the file to write (absolute, ~/…, or relative to the agent's working directory); it must lie inside allowed_paths",
    "content": "string: the complete text to write",
    "overwrite": "boolean, default false: true to replace a file that already exists"
  }
} */

/** What Node's UTF-8 encoder writes for `text` (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8Bytes(text) {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

function checkArgs(args) {
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new TypeError(`expected arguments like {"path": "~/out.txt", "content": "…"}, got ${JSON.stringify(args)}`)
  }
  const { content, overwrite, path } = args
  if (typeof path !== "string" || path.trim() === "") {
    throw new TypeError(`"path" must be a non-empty string naming a file, got ${JSON.stringify(path)}`)
  }
  if (path.endsWith("/")) throw new TypeError(`"path" must name a file, but ${path} ends with "/" (a directory)`)
  if (typeof content !== "string") {
    throw new TypeError(`"content" must be a string, got ${content === null ? "null" : typeof content}; to write data, pass it as JSON text`)
  }
  if (overwrite !== undefined && typeof overwrite !== "boolean") {
    throw new TypeError(`"overwrite" must be true or false, got ${JSON.stringify(overwrite)}`)
  }
  return { path, content, overwrite: overwrite === true }
}

const isNotFound = (error) => error !== null && typeof error === "object" && /\bENOENT\b/.test(String(error.message))

/** The directory part of `path`, or null when there is none to create ("x", "/x"). */
const parentOf = (path) => {
  const slash = path.lastIndexOf("/")
  return slash <= 0 ? null : path.slice(0, slash)
}

/** Writes, creating the parent directory only when the first attempt says it is missing. */
function writeCreatingParent(io, path, content) {
  try {
    io.writeFile(path, content)
    return
  } catch (error) {
    if (!isNotFound(error) || parentOf(path) === null) throw error
  }
  io.mkdir(parentOf(path))
  io.writeFile(path, content)
}

/** `io` is the sandbox's `fs`, or in tests anything with the same `exists`, `writeFile` and `mkdir`. */
export function writeFileWith(io, args) {
  const { content, overwrite, path } = checkArgs(args)
  if (!overwrite && io.exists(path)) {
    throw new Error(`${path} already exists and was left unchanged; pass "overwrite": true to replace it`)
  }
  try {
    writeCreatingParent(io, path, content)
  } catch (error) {
    throw new Error(`cannot write ${path}: ${error.message}`)
  }
  return { path, bytes: utf8Bytes(content) }
}

export function run(args) {
  return writeFileWith(fs, args)
}
