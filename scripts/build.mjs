// Builds dist/ from the sources:
//   dist/cli.cjs                  the CLI as one CommonJS bundle (bin/luallm-agent.cjs runs it)
//   dist/sandboxWorker.cjs        the sandbox's worker thread (the CLI and the library start it)
//   dist/index.js                 the library for plain Node: our sources as one ES module
//   dist/types/                   the library's declarations (.d.ts), emitted by tsc
//   dist/bench.cjs, dist/soak.cjs the bench and soak runners (not shipped: see `files` in package.json)
//   dist/clusterSoak.cjs          the task cluster's soak (not shipped either)
// One bundled file starts several times faster than unbundled ESM (see README, Performance).
//
// Run by `prepare` (so `npm ci` and `npm pack` leave dist/ ready) and by the tests' global setup.
// It builds only when dist/ is out of date: dist/.build.json keeps a hash of every input (see
// `inputs`) and the list of files the build wrote; when the hash is the same and those files
// exist, it does nothing. `--force` (`npm run build`) builds anyway; `--check` only says whether
// dist/ is up to date (exit code 0) or not (1, with the reason).
import { execFile, execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, relative } from "node:path"
import { promisify } from "node:util"

/** The CommonJS bundles: name → entry, each built to dist/<name>.cjs. */
const bundles = {
  cli: "src/shell/main.ts",
  sandboxWorker: "src/layers/sandbox/workerMain.ts",
  bench: "bench/main.ts",
  soak: "scripts/soak.ts",
  clusterSoak: "scripts/clusterSoak.ts"
}

/**
 * Everything the outputs are made from: the sources (this script included), the lock file
 * (which pins every bundled package and esbuild and tsc themselves), and the configurations.
 */
const inputs = {
  dirs: ["src", "bench", "scripts"],
  files: ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json"]
}

const stampFile = "dist/.build.json"

const filesUnder = (dir) =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((entry) => (entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]))

/** A hash of the inputs' names and contents: a changed, added or removed file changes it. */
const inputsDigest = () => {
  const hash = createHash("sha256")
  const files = [...inputs.dirs.filter((dir) => existsSync(dir)).flatMap(filesUnder), ...inputs.files.filter((file) => existsSync(file))]
  for (const file of files) hash.update(`${file}\0`).update(readFileSync(file)).update("\0")
  return hash.digest("hex")
}

const readStamp = () => {
  try {
    const stamp = JSON.parse(readFileSync(stampFile, "utf8"))
    return typeof stamp.inputs === "string" && Array.isArray(stamp.outputs) ? stamp : undefined
  } catch {
    return undefined // no stamp yet, or a damaged one: build
  }
}

/** Why dist/ must be built, or undefined when it is up to date. */
const staleness = (digest) => {
  const stamp = readStamp()
  if (stamp === undefined) return `no ${stampFile} from an earlier build`
  if (stamp.inputs !== digest) return "the sources, the lock file or a configuration changed"
  const missing = stamp.outputs.find((file) => !existsSync(file))
  return missing === undefined ? undefined : `${missing} is missing`
}

/**
 * @effect/cli loads its YAML, TOML and INI parsers when it is loaded, for `Options.file*`
 * config files; initialising them was a sixth of the CLI's start-up. They only ever call
 * `parse`, so each import becomes a module whose `parse` loads the parser on first use.
 */
const lazyFileParsers = {
  name: "lazy-file-parsers",
  setup(plugin) {
    plugin.onResolve({ filter: /^(yaml|toml|ini)$/ }, (args) =>
      args.kind === "import-statement" && /[\\/]@effect[\\/]cli[\\/]/.test(args.importer)
        ? { path: args.path, namespace: "lazy-file-parser", pluginData: { resolveDir: args.resolveDir } }
        : undefined)
    plugin.onLoad({ filter: /.*/, namespace: "lazy-file-parser" }, (args) => ({
      contents: `let parser\nexport const parse = (text) => (parser ??= require(${JSON.stringify(args.path)})).parse(text)\n`,
      resolveDir: args.pluginData.resolveDir,
      loader: "js"
    }))
  }
}

/**
 * Replaces each output file atomically: a process started during a build reads the old file or
 * the new one, never half of one. Returns the paths written, relative to the package.
 */
const writeAtomically = ({ outputFiles }) =>
  outputFiles.map((output) => {
    mkdirSync(dirname(output.path), { recursive: true })
    const tmp = `${output.path}.${process.pid}.tmp`
    writeFileSync(tmp, output.contents)
    renameSync(tmp, output.path)
    return relative(process.cwd(), output.path)
  })

const bundle = (build, name, file) =>
  build({
    entryPoints: [file],
    outfile: `dist/${name}.cjs`,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    // QuickJS finds its .wasm next to its own files: load it from node_modules.
    external: ["quickjs-emscripten", "quickjs-emscripten-core", "@jitl/*"],
    // A lazy `import()` becomes a lazy `require()`: bin/luallm-agent.cjs compiles the bundle
    // with a code cache (vm.Script), where `import()` would need an experimental flag.
    supported: { "dynamic-import": false },
    plugins: [lazyFileParsers],
    // Sources use import.meta.url (to find the package root); give the bundle a real one.
    banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    define: { "import.meta.url": "__import_meta_url" },
    // Every sandbox worker thread compiles its bundle as it starts: a smaller one starts sooner.
    minify: name === "sandboxWorker",
    sourcemap: "linked",
    logLevel: "warning",
    write: false
  }).then(writeAtomically)

/**
 * The library for apps on plain Node, Deno and Bun (none of which load .ts from node_modules):
 * our sources as one ES module, every package left to the app's own node_modules, so it shares
 * the app's copy of `effect`.
 */
const library = (build) =>
  build({
    entryPoints: ["src/index.ts"],
    outfile: "dist/index.js",
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: "linked",
    logLevel: "warning",
    write: false
  }).then(writeAtomically)

/**
 * The library's declarations, emitted by the project's own tsc (tsconfig.build.json) into a
 * fresh directory that then replaces dist/types, so a deleted source leaves no stale .d.ts.
 * tsc keeps the sources' `./x.ts` import paths in declarations (TypeScript issue #61037);
 * TypeScript reads them, but `./x.js` is what every editor and TypeScript version resolves.
 */
const declarations = async () => {
  const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")
  const fresh = `dist/.types.${process.pid}`
  rmSync(fresh, { recursive: true, force: true })
  // A failed tsc (a type error) leaves no half-emitted directory behind for `npm pack` to ship.
  await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", fresh]).catch((error) => {
    rmSync(fresh, { recursive: true, force: true })
    throw error
  })
  const emitted = filesUnder(fresh)
  for (const file of emitted) {
    writeFileSync(file, readFileSync(file, "utf8").replace(/(["'])(\.{1,2}\/[^"'\n]*?)\.ts\1/g, "$1$2.js$1"))
  }
  rmSync("dist/types", { recursive: true, force: true })
  renameSync(fresh, "dist/types")
  return emitted.map((file) => join("dist/types", relative(fresh, file)))
}

const digest = inputsDigest()
const stale = process.argv.includes("--force") ? "--force" : staleness(digest)
if (process.argv.includes("--check")) {
  console.log(stale === undefined ? "dist/ is up to date" : `dist/ is out of date: ${stale}`)
  process.exitCode = stale === undefined ? 0 : 1
} else if (stale === undefined) {
  console.error("dist/ is up to date with the sources (`npm run build` rebuilds it anyway)")
} else {
  // Loaded only to build: an up-to-date check is then a fifth of a second.
  const { build } = await import("esbuild")
  const written = await Promise.all([
    ...Object.entries(bundles).filter(([, file]) => existsSync(file)).map(([name, file]) => bundle(build, name, file)),
    library(build),
    declarations()
  ])
  // One run fills the compile cache (see bin/luallm-agent.cjs), so that the first command after
  // `npm ci` already starts warm; it also proves the bundle loads before the build is stamped.
  execFileSync(process.execPath, ["bin/luallm-agent.cjs", "--help"], { stdio: "ignore" })
  writeFileSync(stampFile, `${JSON.stringify({ inputs: digest, outputs: written.flat() }, null, 2)}\n`)
}
