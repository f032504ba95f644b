// Bundles the CLI (and the bench / soak runners) into CommonJS files under dist/, the sandbox's
// worker thread into dist/sandboxWorker.cjs (the CLI and the library both start it from there),
// and the library entry into dist/index.js.
// One bundled file starts several times faster than unbundled ESM (see README, Performance).
// Run by `prepare`, so `npm ci` leaves `npx luallm-agent` ready.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"

const entries = {
  cli: "src/shell/main.ts",
  sandboxWorker: "src/layers/sandbox/workerMain.ts",
  bench: "bench/main.ts",
  soak: "scripts/soak.ts"
}

/**
 * @effect/cli loads its YAML, TOML and INI parsers when it is loaded, for `Options.file*`
 * config files; initialising them was a sixth of the CLI's start-up. They only ever call
 * `parse`, so each import becomes a module whose `parse` loads the parser on first use.
 */
const lazyFileParsers = {
  name: "lazy-file-parsers",
  setup(build) {
    build.onResolve({ filter: /^(yaml|toml|ini)$/ }, (args) =>
      args.kind === "import-statement" && /[\\/]@effect[\\/]cli[\\/]/.test(args.importer)
        ? { path: args.path, namespace: "lazy-file-parser", pluginData: { resolveDir: args.resolveDir } }
        : undefined)
    build.onLoad({ filter: /.*/, namespace: "lazy-file-parser" }, (args) => ({
      contents: `let parser\nexport const parse = (text) => (parser ??= require(${JSON.stringify(args.path)})).parse(text)\n`,
      resolveDir: args.pluginData.resolveDir,
      loader: "js"
    }))
  }
}

/** Replaces each output file atomically: a process started during a build reads the old file or the new one, never half of one. */
const writeAtomically = ({ outputFiles }) => {
  for (const output of outputFiles) {
    mkdirSync(dirname(output.path), { recursive: true })
    const tmp = `${output.path}.${process.pid}.tmp`
    writeFileSync(tmp, output.contents)
    renameSync(tmp, output.path)
  }
}

await Promise.all([
  ...Object.entries(entries)
    .filter(([, file]) => existsSync(file))
    .map(([name, file]) =>
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
    ),
  // The library for apps on plain Node (which cannot import .ts): our sources as one ES module,
  // every package left to the app's own node_modules, so it shares the app's copy of `effect`.
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
])

// One run fills the compile cache (see bin/luallm-agent.cjs), so that the first command after
// `npm ci` already starts warm; it also proves the bundle loads.
execFileSync(process.execPath, ["bin/luallm-agent.cjs", "--help"], { stdio: "ignore" })
