#!/usr/bin/env node
"use strict"
// The bundle is built by `npm ci` (the package's prepare script) or `npm run build`.
//
// Compiling the 4 MB bundle is about a third of a start. Node 22 can cache compiled code itself
// (module.enableCompileCache); Node 20 cannot, so this keeps V8's code cache for the bundle in a
// directory of the current user's under the OS temp dir. The build fills it (scripts/build.mjs);
// after a cleared temp dir or a Node upgrade the next run compiles and writes it again. V8
// rejects a cache that does not fit the source or the engine, and the bundle is then compiled
// as usual. NODE_DISABLE_COMPILE_CACHE=1 turns it off,
// LUALLM_AGENT_COMPILE_CACHE=<dir> moves it. With --enable-source-maps the bundle is loaded by
// plain `require`, since Node applies source maps only to modules it loads itself.
const crypto = require("node:crypto")
const fs = require("node:fs")
const Module = require("node:module")
const os = require("node:os")
const path = require("node:path")
const vm = require("node:vm")

const bundle = path.join(__dirname, "..", "dist", "cli.cjs")
if (!fs.existsSync(bundle)) {
  process.stderr.write(`luallm-agent: ${bundle} is missing. Run \`npm ci\` or \`npm run build\` in ${path.dirname(__dirname)}.\n`)
  process.exit(1)
}

/**
 * The cache directory, or undefined when caching is off or the directory cannot be trusted:
 * a code cache is executable code, so only a directory that is ours alone is used.
 */
const cacheDirectory = () => {
  if (process.env.NODE_DISABLE_COMPILE_CACHE) return undefined
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined
  const dir = process.env.LUALLM_AGENT_COMPILE_CACHE ||
    path.join(os.tmpdir(), `luallm-agent-compile-cache-${uid ?? os.userInfo().username}`)
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const info = fs.lstatSync(dir)
    const ours = info.isDirectory() && (uid === undefined || info.uid === uid) && (info.mode & 0o022) === 0
    return ours ? dir : undefined
  } catch {
    return undefined // the cache only saves time: without a usable directory, compile as usual
  }
}

const readCache = (file) => {
  try {
    return fs.readFileSync(file)
  } catch {
    return undefined // no cache yet
  }
}

const digest = (parts) => crypto.createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 16)

/**
 * Written after the run, so it also holds the functions V8 compiled lazily while running. It
 * replaces the caches of earlier builds of the same bundle: one file per installed bundle.
 */
const writeCache = (dir, name, script) => {
  const file = path.join(dir, name)
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 })
    fs.renameSync(tmp, file)
    const bundleId = name.split("-")[0]
    for (const old of fs.readdirSync(dir)) {
      if (old.startsWith(`${bundleId}-`) && old !== name) fs.rmSync(path.join(dir, old), { force: true })
    }
  } catch {
    // A cache that cannot be written or pruned only makes a later start slower.
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** Which build of the bundle: V8 checks a cache against the source's length only. */
const buildOf = (file) => {
  const { mtimeMs, size } = fs.statSync(file)
  return digest([size, mtimeMs, process.version, process.arch])
}

const runWithCodeCache = (file, dir) => {
  const build = buildOf(file)
  const source = fs.readFileSync(file, "utf8")
  // A bundle rewritten while it was read (a build running now) is run, but its cache is not kept.
  const settled = buildOf(file) === build
  const name = `${digest([file])}-${build}.bin`
  const cachedData = settled ? readCache(path.join(dir, name)) : undefined
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData })
  if (settled && (cachedData === undefined || script.cachedDataRejected)) process.once("exit", () => writeCache(dir, name, script))
  const mod = new Module.Module(file, module)
  mod.filename = file
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, path.dirname(file))
}

const dir = process.sourceMapsEnabled ? undefined : cacheDirectory()
if (dir === undefined) require(bundle)
else runWithCodeCache(bundle, dir)
