/* @skill {
  "name": "shell_safe",
  "version": "1.0.0",
  "description": "Runs one read-only command (ls, wc, head, tail, grep, find, cat, sort or uniq) with its arguments as argv, never through a shell, so ; | $( ) * and quotes are plain characters, and returns {stdout, stderr, code, truncated}. The host reads the arguments the way the command would: only options known to be safe are accepted (in any spelling GNU allows, but never abbreviated), and options that write, delete, run programs, follow symlinks or read lists of files (sort -o, find -exec, grep -R, wc --files0-from, …) are refused. File arguments must be absolute or ~/… and lie inside allowed_paths; a relative name means a file in the command's own empty directory, so it finds nothing. grep -r, ls -R and find may search only a directory that a dir/** glob of allowed_paths covers. Commands run with a minimal environment; output is capped (truncated says so), and the run is bounded by the skill time limit. It needs the exec capability, which only the skill_exec approval tier grants.",
  "dependencies": [],
  "paths": ["/**"],
  "urls": [],
  "capabilities": ["exec"],
  "public_functions": ["run"],
  "args": {
    "command": "string: one of ls, wc, head, tail, grep, find, cat, sort, uniq (a bare name, no path, no arguments)",
    "args": "array of strings, default []: the command's arguments exactly as they should reach it, e.g. [\"-c\", \"error\", \"~/logs/app.log\"]; file names must be absolute or ~/…; long options written in full"
  }
} */

/** The same list the host enforces; checked here first so a bad call fails with a plain error. */
const allowedCommands = ["ls", "wc", "head", "tail", "grep", "find", "cat", "sort", "uniq"]

const MAX_ARGS = 256

// The sandbox refuses a result over 1 MiB of JSON; these budgets keep stdout and stderr under it.
const maxStdoutJson = 900000
const maxStderrJson = 64000

const isHigh = (unit) => unit >= 0xd800 && unit <= 0xdbff
const isLow = (unit) => unit >= 0xdc00 && unit <= 0xdfff

/** `length`, moved back by one when it would cut a surrogate pair in half. */
const wholeCharacters = (text, length) =>
  isHigh(text.charCodeAt(length - 1)) && isLow(text.charCodeAt(length)) ? length - 1 : length

/**
 * The longest prefix of `text` whose JSON encoding fits in `maxJsonChars`, never cutting a
 * surrogate pair, and whether anything was cut. Measured on whole characters, the JSON length
 * only grows with the prefix, so a binary search finds it.
 */
export function capForJson(text, maxJsonChars) {
  if (JSON.stringify(text).length <= maxJsonChars) return { text, truncated: false }
  const fitsAt = (length) => JSON.stringify(text.slice(0, wholeCharacters(text, length))).length <= maxJsonChars
  let fits = 0
  let tooLong = text.length
  while (tooLong - fits > 1) {
    const middle = Math.floor((fits + tooLong) / 2)
    if (fitsAt(middle)) fits = middle
    else tooLong = middle
  }
  return { text: text.slice(0, wholeCharacters(text, fits)), truncated: true }
}

function checkArgs(args) {
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new TypeError(`expected arguments like {"command": "wc", "args": ["-l", "~/notes.txt"]}, got ${JSON.stringify(args)}`)
  }
  const { command } = args
  if (typeof command !== "string") throw new TypeError(`"command" must be a string, one of ${allowedCommands.join(", ")}; got ${JSON.stringify(command)}`)
  if (!allowedCommands.includes(command)) {
    throw new Error(`${JSON.stringify(command)} is not an allowed command: only ${allowedCommands.join(", ")} may run, as a bare name with its arguments in "args" (no shell, no pipes)`)
  }
  const argv = args.args === undefined ? [] : args.args
  if (!Array.isArray(argv)) {
    throw new TypeError(`"args" must be an array of strings, got ${JSON.stringify(argv)}; write ["-n", "5", "~/f.txt"], not one string`)
  }
  if (argv.length > MAX_ARGS) throw new RangeError(`"args" has ${argv.length} entries, more than the ${MAX_ARGS} allowed`)
  argv.forEach((arg, index) => {
    if (typeof arg !== "string") throw new TypeError(`"args"[${index}] must be a string, got ${JSON.stringify(arg)}`)
    if (arg.includes("\u0000")) throw new TypeError(`"args"[${index}] contains a NUL character, which no argument may hold`)
  })
  return { command, argv }
}

/** `execute` is the sandbox's `exec`, or in tests anything with the same signature and result. */
export function shellWith(execute, args) {
  const { argv, command } = checkArgs(args)
  const result = execute(command, argv)
  const stdout = capForJson(result.stdout, maxStdoutJson)
  const stderr = capForJson(result.stderr, maxStderrJson)
  return {
    stdout: stdout.text,
    stderr: stderr.text,
    code: result.code,
    truncated: result.truncated || stdout.truncated || stderr.truncated
  }
}

export function run(args) {
  return shellWith(exec, args)
}
