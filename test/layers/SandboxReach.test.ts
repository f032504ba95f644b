/**
 * What a skill can reach through `fs` and `exec` (issue 13, items 1, 2, 3, 6, 7 and 9), each
 * attacked the way the outside review did, with the exact refusal it must meet and a look at
 * the disk afterwards: nothing written, nothing read from outside.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import {
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { afterAll, beforeEach } from "vitest"
import type { Json } from "../../src/core/config.ts"
import { AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom, AppConfigLive } from "../../src/layers/Config.ts"
import {
  CommandNotAllowed,
  draft,
  NotARegularFile,
  PathNotAllowed,
  type RunMode,
  Sandbox,
  sandboxLayer,
  sandboxLimits,
  type SandboxError,
  trusted,
  WriteLimitExceeded
} from "../../src/layers/Sandbox.ts"
import { type FileAccess, makeFileAccess } from "../../src/layers/sandbox/fileAccess.ts"
import { makePathGuard, makeRunPaths } from "../../src/layers/sandbox/paths.ts"
import { nodeSandboxHost, type SandboxHost } from "../../src/layers/sandbox/host.ts"
import { Agent } from "../../src/Agent.ts"
import { FakeReply } from "../../src/layers/Llm.ts"
import { builtinSkillsDir, compileCacheDirectory } from "../../src/packageRoot.ts"
import { agentLayer, testConfig } from "../support/agentHarness.ts"
import { buildWorker } from "../support/buildWorker.ts"
import { runCli } from "../support/cli.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"
import { header, makeFixture, runRequest, sandboxTestLayer, skillSource } from "./sandboxTestKit.ts"

// ---- fixtures ------------------------------------------------------------------------------------

/** allowed_paths: ~/data/** only. */
const narrow = makeFixture((config) => ({ ...config, limits: { ...config.limits, skill_timeout_seconds: 5 } }))
/** allowed_paths: the whole home, where the agent's own files live too. */
const broad = makeFixture((config, home) => ({
  ...config,
  allowed_paths: [`${home}/**`],
  luallm: { ...config.luallm, binary: `${home}/bin/luallm`, state_file: `${home}/cache/luallm/state.json` },
  limits: { ...config.limits, skill_timeout_seconds: 5 }
}))
/** allowed_paths: everything. */
const everything = makeFixture((config) => ({ ...config, allowed_paths: ["/**"], limits: { ...config.limits, skill_timeout_seconds: 5 } }))
/** A stand-in for the installed package (tests must not risk the real one). */
const fakePackage = join(broad.home, "package")

afterAll(() => {
  for (const f of [narrow, broad, everything]) f.cleanup()
})

for (const f of [narrow, broad, everything]) {
  writeFileSync(join(f.outside, "secret.txt"), "top secret\n")
  writeFileSync(join(f.data, "lines.txt"), "a\nb\nc\n")
  writeFileSync(join(f.data, "slashes.txt"), "see a/b here\nnothing\n")
  mkdirSync(join(f.data, "sub", "deeper"), { recursive: true })
  writeFileSync(join(f.data, "sub", "deeper", "found.txt"), "needle\n")
  symlinkSync(f.outside, join(f.data, "link-dir"))
  execFileSync("mkfifo", [join(f.data, "fifo")])
}
mkdirSync(broad.config.state_dir, { recursive: true })
writeFileSync(broad.config.audit.path, "{\"event\":\"real history\"}\n")
writeFileSync(`${broad.config.audit.path}.2`, "{\"event\":\"older history\"}\n")
writeFileSync(join(broad.config.skills.allowed_dir, "trusted.js"), "/* approved */")
mkdirSync(join(broad.home, ".config", "luallm-agent"), { recursive: true })
writeFileSync(join(broad.home, ".config", "luallm-agent", "config.json"), "{\"llm\": {\"api_key\": \"sk-secret\"}}")
for (const dir of ["dist", "bin", "skills", "node_modules/effect"]) mkdirSync(join(fakePackage, dir), { recursive: true })
writeFileSync(join(fakePackage, "package.json"), "{\"name\": \"luallm-agent\"}")
writeFileSync(join(narrow.data, "list0"), `${join(narrow.outside, "secret.txt")}\u0000`)
symlinkSync("/proc/self/environ", join(everything.data, "environ-link"))

// ---- helpers -------------------------------------------------------------------------------------

interface Attempt {
  readonly name: string
  readonly code: string
  readonly meta?: Record<string, unknown>
  readonly mode?: RunMode
  readonly error: { readonly _tag: string; readonly message: string }
}

const everywhere = { paths: ["~/**"] }
const exec = (paths: ReadonlyArray<string> = ["~/**"]) => ({ paths, capabilities: ["exec"] })

const call = (code: string, meta: Record<string, unknown> = {}, options: { readonly mode?: RunMode; readonly args?: Json } = {}) =>
  Effect.flatMap(Sandbox, (sandbox) =>
    sandbox.call(runRequest(skillSource(header(meta) + code), { mode: options.mode, grantExec: true }), "run", options.args ?? {}))

const expectRefusal = (a: Attempt) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(call(a.code, a.meta, { mode: a.mode }))
    expect({ _tag: error._tag, message: error.message }).toEqual({ _tag: a.error._tag, message: a.error.message })
  })

const pathRefusal = (
  operation: string,
  path: string,
  resolved: string,
  reason: PathNotAllowed["reason"],
  rule: ReadonlyArray<string>
) => new PathNotAllowed({ skill: "probe", operation, path, resolved, reason, rule })

const commandRefusal = (command: string, reason: string) => new CommandNotAllowed({ skill: "probe", command, reason })

/** `exec(command, args)` as skill code. */
const execCode = (command: string, args: ReadonlyArray<string>) => `export const run = () => exec(${JSON.stringify(command)}, ${JSON.stringify(args)})`

// ---- exec: never another program, never a write ------------------------------------------------------

const canary = {
  evil: join(broad.config.skills.allowed_dir, "evil.js"),
  audit: broad.config.audit.path
}

const execWrites: ReadonlyArray<Attempt> = [
  { name: "sort -o into skills.allowed_dir", meta: exec(), code: execCode("sort", ["-o", canary.evil, "~/data/lines.txt"]), error: commandRefusal("sort", "sort's -o writes files: it names the file sort writes its output to") },
  { name: "sort -no (joined) into skills.allowed_dir", meta: exec(), code: execCode("sort", ["-no", canary.evil, "~/data/lines.txt"]), error: commandRefusal("sort", "sort's -o writes files: it names the file sort writes its output to (in -no)") },
  { name: "sort -oFILE (value joined)", meta: exec(), code: execCode("sort", [`-o${canary.evil}`, "~/data/lines.txt"]), error: commandRefusal("sort", `sort's -o writes files: it names the file sort writes its output to (in -o${canary.evil})`) },
  { name: "sort --outp= (abbreviated) cutting the audit log", meta: exec(), code: execCode("sort", [`--outp=${canary.audit}`, "~/data/lines.txt"]), error: commandRefusal("sort", "--outp abbreviates --output, and sort's --output writes files: it names the file sort writes its output to") },
  { name: "sort with -o after the operands", meta: exec(), code: execCode("sort", ["~/data/lines.txt", "-o", canary.audit]), error: commandRefusal("sort", "sort's -o writes files: it names the file sort writes its output to") },
  { name: "sort --compress-program=sh (a shell)", meta: exec(), code: execCode("sort", ["--compress-program=sh", "~/data/lines.txt"]), error: commandRefusal("sort", "sort's --compress-program runs another program") },
  { name: "sort --compress-prog sh (abbreviated, value in the next word)", meta: exec(), code: execCode("sort", ["--compress-prog", "sh", "~/data/lines.txt"]), error: commandRefusal("sort", "--compress-prog abbreviates --compress-program, and sort's --compress-program runs another program") },
  { name: "uniq writing its output operand", meta: exec(), code: execCode("uniq", ["~/data/lines.txt", canary.evil]), error: commandRefusal("uniq", "uniq's second operand is an output file it would write; give it one input file") },
  { name: "uniq -f 1 hiding the output operand behind a value", meta: exec(), code: execCode("uniq", ["-f", "1", "~/data/lines.txt", canary.evil]), error: commandRefusal("uniq", "uniq's second operand is an output file it would write; give it one input file") },
  { name: "find -fprint", meta: exec(), code: execCode("find", ["~/data", "-fprint", canary.evil]), error: commandRefusal("find", "find's -fprint writes files") },
  { name: "find -exec sh", meta: exec(), code: execCode("find", ["~/data", "-exec", "sh", "-c", "id > ~/pwned", ";"]), error: commandRefusal("find", "find's -exec runs programs") },
  { name: "find -delete", meta: exec(), code: execCode("find", ["~/data", "-delete"]), error: commandRefusal("find", "find's -delete deletes files") },
  { name: "tail -f (never returns)", meta: exec(), code: execCode("tail", ["-f", "~/data/lines.txt"]), error: commandRefusal("tail", "tail's -f follows the file and never returns") }
]

layer(sandboxTestLayer(broad, { packageRoot: fakePackage }))("exec never starts another program or writes a file", (it) => {
  it.effect.each(execWrites)("refuses $name", expectRefusal)

  it.effect("after every attempt, nothing was written and the audit log is whole", () =>
    Effect.sync(() => {
      expect(existsSync(canary.evil)).toBe(false)
      expect(existsSync(join(broad.home, "pwned"))).toBe(false)
      expect(readFileSync(canary.audit, "utf8")).toBe("{\"event\":\"real history\"}\n")
      expect(readFileSync(join(broad.data, "lines.txt"), "utf8")).toBe("a\nb\nc\n")
    }))
})

// ---- exec: reads only checked paths ------------------------------------------------------------------

const secret = join(narrow.outside, "secret.txt")
const execReads: ReadonlyArray<Attempt> = [
  { name: "wc --files0-from (a list naming a secret)", meta: exec(["~/data/**"]), code: execCode("wc", ["--files0-from=~/data/list0"]), error: commandRefusal("wc", "wc's --files0-from reads a list of file names from a file, past the path checks") },
  { name: "grep -f with a pattern file outside", meta: exec(["~/data/**"]), code: execCode("grep", ["-f", secret, "~/data/lines.txt"]), error: pathRefusal("exec grep", secret, secret, "not_declared", ["~/data/**"]) },
  { name: "grep --exclude-from outside", meta: exec(["~/data/**"]), code: execCode("grep", ["--exclude-from", secret, "x", "~/data/lines.txt"]), error: pathRefusal("exec grep", secret, secret, "not_declared", ["~/data/**"]) },
  { name: "grep -R following a symlink out", meta: exec(["~/data/**"]), code: execCode("grep", ["-R", "top", "~/data"]), error: commandRefusal("grep", "grep's -R follows symlinks, which can lead outside the checked paths; use -r, which does not follow them") },
  { name: "find -L following a symlink out", meta: exec(["~/data/**"]), code: execCode("find", ["-L", "~/data", "-name", "secret.txt"]), error: commandRefusal("find", "find's -L follows symlinks, which can lead outside the checked paths") },
  { name: "ls -L", meta: exec(["~/data/**"]), code: execCode("ls", ["-lL", "~/data/link-dir"]), error: commandRefusal("ls", "ls's -L follows symlinks, which can lead outside the checked paths (in -lL)") },
  { name: "cat through a symlinked directory", meta: exec(["~/data/**"]), code: execCode("cat", ["~/data/link-dir/secret.txt"]), error: pathRefusal("exec cat", "~/data/link-dir/secret.txt", secret, "symlink_escape", ["~/data/**", `${narrow.data}/**`]) },
  { name: "find -newer naming a file outside", meta: exec(["~/data/**"]), code: execCode("find", ["~/data", "-newer", secret]), error: pathRefusal("exec find", secret, secret, "not_declared", ["~/data/**"]) },
  { name: "a relative operand climbing out of the empty directory", meta: exec(["~/data/**"]), code: execCode("cat", ["../../outside/secret.txt"]), error: pathRefusal("exec cat", "../../outside/secret.txt", "../../outside/secret.txt", "parent_segment", []) },
  {
    name: "grep -r over a directory the globs do not cover below",
    meta: exec(["~/data/*"]),
    code: execCode("grep", ["-r", "needle", "~/data/sub"]),
    error: pathRefusal("exec grep -r", "~/data/sub", join(narrow.data, "sub"), "recursion_uncovered", ["~/data/*", `${narrow.data}/**`])
  },
  {
    name: "find over a directory the globs do not cover below",
    meta: exec(["~/data/*"]),
    code: execCode("find", ["~/data/sub"]),
    error: pathRefusal("exec find find", "~/data/sub", join(narrow.data, "sub"), "recursion_uncovered", ["~/data/*", `${narrow.data}/**`])
  },
  { name: "cat of a FIFO (would block)", meta: exec(["~/data/**"]), code: execCode("cat", ["~/data/fifo"]), error: new NotARegularFile({ skill: "probe", operation: "exec cat", path: "~/data/fifo", resolved: join(narrow.data, "fifo"), kind: "FIFO" }) }
]

layer(sandboxTestLayer(narrow))("exec reads only paths that were checked", (it) => {
  it.effect.each(execReads)("refuses $name", expectRefusal)

  it.effect("grep -r searches below an allowed directory without following its symlink out", () =>
    Effect.gen(function*() {
      const { result } = yield* call(execCode("grep", ["-rnI", "e", "~/data"]), exec(["~/data/**"]))
      expect(result).toEqual({ stdout: `${join(narrow.data, "slashes.txt")}:1:see a/b here\n${join(narrow.data, "sub", "deeper", "found.txt")}:1:needle\n`, stderr: "", code: 0, truncated: false })
      const secretSearch = yield* call(execCode("grep", ["-rl", "top secret", "~/data"]), exec(["~/data/**"]))
      expect(secretSearch.result).toEqual({ stdout: "", stderr: "", code: 1, truncated: false })
    }))

  it.effect("grep -r skips a FIFO met below instead of blocking on it", () =>
    Effect.gen(function*() {
      // Blocking on the FIFO would end the run with SkillTimeout instead of grep's answer.
      const { result } = yield* call(execCode("grep", ["-r", "nothing-matches-this", "~/data"]), exec(["~/data/**"]))
      expect(result).toEqual({ stdout: "", stderr: "", code: 1, truncated: false })
    }))

  it.effect("a grep pattern holding / is a pattern, not a path", () =>
    Effect.gen(function*() {
      const { result } = yield* call(execCode("grep", ["-c", "a/b", "~/data/slashes.txt"]), exec(["~/data/**"]))
      expect(result).toEqual({ stdout: "1\n", stderr: "", code: 0, truncated: false })
    }))

  it.effect("find lists below an allowed directory, and prints only", () =>
    Effect.gen(function*() {
      const { result } = yield* call(execCode("find", ["~/data/sub", "-name", "*.txt"]), exec(["~/data/**"]))
      expect(result).toEqual({ stdout: `${join(narrow.data, "sub", "deeper", "found.txt")}\n`, stderr: "", code: 0, truncated: false })
    }))

  it.effect("a relative operand names a file in the command's empty directory, so it finds nothing", () =>
    Effect.gen(function*() {
      const { result } = yield* call(execCode("cat", ["lines.txt"]), exec(["~/data/**"]))
      expect(result).toEqual({ stdout: "", stderr: "cat: lines.txt: No such file or directory\n", code: 1, truncated: false })
    }))
})

// ---- exec: what a command may use ---------------------------------------------------------------

layer(sandboxTestLayer(narrow))("a command's memory is bounded like the skill's", (it) => {
  it.effect("grep with a regex whose automaton needs hundreds of MB fails with its own error, not the host's memory", () =>
    Effect.gen(function*() {
      writeFileSync(join(narrow.data, "aaaa.txt"), "aaaa\n")
      // Unbounded, grep builds this automaton in ~170 MB and prints the line; bounded by
      // skill_memory_mb (32 MB here) it runs out of memory at once. Larger counts take GBs.
      const { result } = yield* call(execCode("grep", ["-E", "a{1,200}{1,200}", "~/data/aaaa.txt"]), exec(["~/data/**"]))
      expect(result).toMatchObject({ stdout: "", truncated: false })
      const { code, stderr } = result as { readonly code: number | null; readonly stderr: string }
      expect(code).not.toBe(0)
      expect(stderr).toMatch(/^grep: (Memory exhausted|program error)\n$/)
    }))
})

const unboundedHost = sandboxLayer({ home: narrow.home, cwd: narrow.home }, buildWorker("test/support/unboundedHostWorker.ts", "unboundedHostWorker")).pipe(
  Layer.provideMerge(AuditTest),
  Layer.provideMerge(AppConfigFrom(narrow.config, { home: narrow.home, cwd: narrow.home })),
  Layer.provideMerge(NodeContext.layer)
)

layer(unboundedHost)("a host that cannot bound a command's memory", (it) => {
  it.effect("runs no command at all", () =>
    expectRefusal({
      name: "cat on a host without prlimit",
      meta: exec(["~/data/**"]),
      code: execCode("cat", ["~/data/lines.txt"]),
      error: commandRefusal("cat", "this host cannot bound a command's memory (prlimit, from util-linux, is not installed); install util-linux")
    }))
})

// ---- the trust roots ------------------------------------------------------------------------------

const protectedRefusal = (operation: string, path: string, resolved: string, key: string, root: string) =>
  pathRefusal(operation, path, resolved, "protected", [`${key} (${root})`])

const home = broad.home
const cwdConfig = join(home, "luallm-agent.json")
const userConfig = join(home, ".config", "luallm-agent", "config.json")
const trustRootAttempts: ReadonlyArray<Attempt> = [
  { name: "writing ./luallm-agent.json (a config the next run would load)", meta: everywhere, code: "export const run = () => fs.writeFile('~/luallm-agent.json', '{}')", error: protectedRefusal("fs.writeFile", "~/luallm-agent.json", cwdConfig, "the config file (./luallm-agent.json)", cwdConfig) },
  { name: "rewriting ~/.config/luallm-agent/config.json", meta: everywhere, code: "export const run = () => fs.writeFile('~/.config/luallm-agent/config.json', '{\"luallm\": {\"binary\": \"sh\"}}')", error: protectedRefusal("fs.writeFile", "~/.config/luallm-agent/config.json", userConfig, "the config file (~/.config/luallm-agent/config.json)", userConfig) },
  { name: "reading the config file (it holds llm.api_key)", meta: everywhere, code: "export const run = () => fs.readFile('~/.config/luallm-agent/config.json')", error: protectedRefusal("fs.readFile", "~/.config/luallm-agent/config.json", userConfig, "the config file (~/.config/luallm-agent/config.json)", userConfig) },
  { name: "cat of the config file", meta: exec(), code: execCode("cat", ["~/.config/luallm-agent/config.json"]), error: protectedRefusal("exec cat", "~/.config/luallm-agent/config.json", userConfig, "the config file (~/.config/luallm-agent/config.json)", userConfig) },
  { name: "grep -r over the home, which holds the config files", meta: exec(), code: execCode("grep", ["-r", "api_key", "~"]), error: pathRefusal("exec grep -r", "~", home, "recursion_protected", [`the config file (./luallm-agent.json) (${cwdConfig})`]) },
  { name: "mkdir at the config file's path", meta: everywhere, code: "export const run = () => fs.mkdir('~/.config/luallm-agent/config.json/x')", error: protectedRefusal("fs.mkdir", "~/.config/luallm-agent/config.json/x", `${userConfig}/x`, "the config file (~/.config/luallm-agent/config.json)", userConfig) },
  { name: "appending to a rotation of the audit log", meta: everywhere, code: "export const run = () => fs.appendFile('~/state/audit.jsonl.2', '{}')", error: protectedRefusal("fs.appendFile", "~/state/audit.jsonl.2", `${broad.config.audit.path}.2`, "state_dir", broad.config.state_dir) },
  { name: "writing into skills.builtin_dir", meta: everywhere, code: "export const run = () => fs.writeFile('~/builtin/shell_safe.js', 'x')", error: protectedRefusal("fs.writeFile", "~/builtin/shell_safe.js", join(home, "builtin", "shell_safe.js"), "skills.builtin_dir", join(home, "builtin")) },
  { name: "writing luallm's state file", meta: everywhere, code: "export const run = () => fs.writeFile('~/cache/luallm/state.json', '{}')", error: protectedRefusal("fs.writeFile", "~/cache/luallm/state.json", join(home, "cache", "luallm", "state.json"), "luallm.state_file", join(home, "cache", "luallm", "state.json")) },
  { name: "planting luallm.binary", meta: everywhere, code: "export const run = () => fs.writeFile('~/bin/luallm', '#!/bin/sh')", error: protectedRefusal("fs.writeFile", "~/bin/luallm", join(home, "bin", "luallm"), "luallm.binary", join(home, "bin", "luallm")) },
  { name: "rewriting the package's package.json", meta: everywhere, code: "export const run = () => fs.writeFile('~/package/package.json', '{}')", error: protectedRefusal("fs.writeFile", "~/package/package.json", join(fakePackage, "package.json"), "the luallm-agent package", fakePackage) },
  { name: "rewriting the package's dist/", meta: everywhere, code: "export const run = () => fs.writeFile('~/package/dist/cli.cjs', 'x')", error: protectedRefusal("fs.writeFile", "~/package/dist/cli.cjs", join(fakePackage, "dist", "cli.cjs"), "the luallm-agent package", fakePackage) },
  { name: "a directory in the package's node_modules", meta: everywhere, code: "export const run = () => fs.mkdir('~/package/node_modules/evil')", error: protectedRefusal("fs.mkdir", "~/package/node_modules/evil", join(fakePackage, "node_modules", "evil"), "the luallm-agent package", fakePackage) },
  { name: "planting luallm-agent.json in another directory (the next run started there loads it)", meta: everywhere, code: "export const run = () => fs.writeFile('~/data/luallm-agent.json', '{\"luallm\": {\"binary\": \"sh\"}}')", error: protectedRefusal("fs.writeFile", "~/data/luallm-agent.json", join(broad.data, "luallm-agent.json"), "a config file luallm-agent loads when started in its directory", "luallm-agent.json, in any directory") },
  { name: "a directory named luallm-agent.json (the next run started beside it fails)", meta: everywhere, code: "export const run = () => fs.mkdir('~/data/sub/luallm-agent.json/x')", error: protectedRefusal("fs.mkdir", "~/data/sub/luallm-agent.json/x", join(broad.data, "sub", "luallm-agent.json", "x"), "a config file luallm-agent loads when started in its directory", "luallm-agent.json, in any directory") },
  { name: "code in a node_modules directory the package's modules resolve from", meta: everywhere, code: "export const run = () => fs.writeFile('~/node_modules/quickjs-emscripten/dist/index.js', 'x')", error: protectedRefusal("fs.writeFile", "~/node_modules/quickjs-emscripten/dist/index.js", join(home, "node_modules", "quickjs-emscripten", "dist", "index.js"), "a node_modules directory the package loads code from", join(home, "node_modules")) },
  { name: "a draft writing the package's shipped skills", meta: everywhere, code: "export const run = () => fs.writeFile('~/package/skills/shell_safe.js', 'x')", mode: draft(join(home, "scratch")), error: protectedRefusal("fs.writeFile", "~/package/skills/shell_safe.js", join(fakePackage, "skills", "shell_safe.js"), "the luallm-agent package", fakePackage) }
]

layer(sandboxTestLayer(broad, { packageRoot: fakePackage }))("no skill writes a trust root, whatever allowed_paths says", (it) => {
  it.effect.each(trustRootAttempts)("refuses $name", expectRefusal)

  it.effect("a refused mkdir creates none of the directories on the way", () =>
    Effect.gen(function*() {
      rmSync(join(home, ".config"), { recursive: true, force: true })
      yield* Effect.flip(call("export const run = () => fs.mkdir('~/.config/luallm-agent/config.json/x')", everywhere))
      expect(existsSync(join(home, ".config"))).toBe(false)
    }))

  it.effect("the protected message says what the trust roots are and what to do", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(call("export const run = () => fs.writeFile('~/luallm-agent.json', '{}')", everywhere))
      expect(error.message).toBe(
        `Refused fs.writeFile("~/luallm-agent.json") by skill probe: ${cwdConfig} is inside the config file (./luallm-agent.json) (${cwdConfig}), one of luallm-agent's trust roots (its config files, skills, drafts, state, audit log, package and luallm's files): no skill may change it whatever allowed_paths says, config files may not even be read (they can hold llm.api_key) and drafts may not even read skills.allowed_dir. Point the skill at a path under allowed_paths outside these.`
      )
    }))
})

/** luallm.binary a bare name, found on PATH: every directory of PATH could hold the one that runs. */
const onPath = makeFixture((config, dir) => ({ ...config, allowed_paths: [`${dir}/**`], luallm: { ...config.luallm, binary: "luallm" } }))
afterAll(() => onPath.cleanup())
const localBin = join(onPath.home, ".local", "bin")

layer(sandboxTestLayer(onPath, { packageRoot: null, searchPath: [localBin, "/usr/bin"] }))("luallm.binary found on PATH", (it) => {
  it.effect("refuses to plant a luallm in a directory of PATH, or a directory in its place", () =>
    Effect.gen(function*() {
      const write = yield* Effect.flip(call("export const run = () => fs.writeFile('~/.local/bin/luallm', '#!/bin/sh')", everywhere))
      expect(write).toEqual(protectedRefusal("fs.writeFile", "~/.local/bin/luallm", join(localBin, "luallm"), "luallm.binary on PATH", join(localBin, "luallm")))
      const mkdir = yield* Effect.flip(call("export const run = () => fs.mkdir('~/.local/bin/luallm')", everywhere))
      expect(mkdir).toEqual(protectedRefusal("fs.mkdir", "~/.local/bin/luallm", join(localBin, "luallm"), "luallm.binary on PATH", join(localBin, "luallm")))
      expect(existsSync(join(localBin, "luallm"))).toBe(false)
    }))

  it.effect("still lets a skill write other files there", () =>
    Effect.gen(function*() {
      yield* call("export const run = () => fs.mkdir('~/.local/bin')", everywhere)
      yield* call("export const run = () => fs.writeFile('~/.local/bin/notes.txt', 'ok')", everywhere)
      expect(readFileSync(join(localBin, "notes.txt"), "utf8")).toBe("ok")
    }))
})

/** The bin's code cache holds compiled code the next CLI start runs. */
const cache = makeFixture((config) => ({ ...config, allowed_paths: ["/**"] }))
afterAll(() => cache.cleanup())
const cacheDir = join(cache.home, "compile-cache")

layer(sandboxTestLayer(cache, { packageRoot: null, compileCache: cacheDir }))("the CLI's compiled-code cache", (it) => {
  it.effect("refuses to write a code cache the next start would run", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(call(`export const run = () => fs.writeFile(${JSON.stringify(`${cacheDir}/0123-4567.bin`)}, 'x')`, { paths: ["/**"] }))
      expect(error).toEqual(protectedRefusal("fs.writeFile", `${cacheDir}/0123-4567.bin`, join(cacheDir, "0123-4567.bin"), "the CLI's compiled-code cache", cacheDir))
    }))
})

describe("the CLI's compiled-code cache is where the sandbox protects it", () => {
  it.scoped("by default (under the temporary directory) and when LUALLM_AGENT_COMPILE_CACHE names it", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      runCli(["--version"], { env: { TMPDIR: tmp } })
      const before = process.env["TMPDIR"]
      process.env["TMPDIR"] = tmp
      try {
        expect(existsSync(compileCacheDirectory({}))).toBe(true)
        expect(readdirSync(tmp)).toEqual([basename(compileCacheDirectory({}))])
      } finally {
        if (before === undefined) delete process.env["TMPDIR"]
        else process.env["TMPDIR"] = before
      }
      const named = join(tmp, "named-cache")
      runCli(["--version"], { env: { LUALLM_AGENT_COMPILE_CACHE: named } })
      expect(existsSync(named)).toBe(true)
      expect(compileCacheDirectory({ LUALLM_AGENT_COMPILE_CACHE: named })).toBe(named)
    }).pipe(Effect.provide(TestPlatform)))
})

layer(sandboxTestLayer(broad, { packageRoot: fakePackage }))("mkdir checks every directory it would create", (it) => {
  it.effect("refuses to create ~/.local on the way to a declared ~/.local/bin/tool/x, and creates nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(call("export const run = () => fs.mkdir('~/.local/bin/tool/x')", { paths: ["~/.local/bin/tool/**"] }))
      expect({ _tag: error._tag, message: error.message }).toEqual({
        _tag: "PathNotAllowed",
        message: `Refused fs.mkdir("~/.local/bin/tool/x") by skill probe: ${join(home, ".local")} is not among the paths the skill declares (~/.local/bin/tool/**). Add a matching glob to the skill's "paths" (a changed skill needs approval again).`
      })
      expect(existsSync(join(home, ".local"))).toBe(false)
    }))

  it.effect("creates every missing directory when each is allowed", () =>
    Effect.gen(function*() {
      yield* call("export const run = () => fs.mkdir('~/data/made/a/b')", { paths: ["~/data/**"] })
      expect(statSync(join(broad.data, "made", "a", "b")).isDirectory()).toBe(true)
    }))
})

describe("config files that were loaded or named", () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "luallm-reach-config-")))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const named = join(dir, "named.json")
  const fromEnv = join(dir, "from-env.json")
  const settings = JSON.stringify({ allowed_paths: [`${dir}/**`], state_dir: `${dir}/state`, skills: { allowed_dir: `${dir}/skills`, agent_dir: `${dir}/drafts` } })
  writeFileSync(named, settings)
  writeFileSync(fromEnv, settings)
  const loaded = (configPath: string | undefined) =>
    sandboxLayer({ home: dir, cwd: dir }, undefined, { packageRoot: null }).pipe(
      Layer.provideMerge(AuditTest),
      Layer.provideMerge(AppConfigLive({ configPath, builtinSkillsDir: join(dir, "builtin") })),
      Layer.provideMerge(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["HOME", dir], ["LUALLM_AGENT_CONFIG", fromEnv]])))),
      Layer.provideMerge(NodeContext.layer)
    )
  const write = (path: string) => call(`export const run = () => fs.writeFile(${JSON.stringify(path)}, '{"luallm": {"binary": "sh"}}')`, { paths: [`${dir}/**`] })

  it.effect("refuses a write to the file --config named, and to the one $LUALLM_AGENT_CONFIG names", () =>
    Effect.gen(function*() {
      const toNamed = yield* Effect.flip(write(named))
      expect(toNamed).toEqual(protectedRefusal("fs.writeFile", named, named, "the config file (--config)", named))
      const toEnv = yield* Effect.flip(write(fromEnv))
      expect(toEnv).toEqual(protectedRefusal("fs.writeFile", fromEnv, fromEnv, "the config file ($LUALLM_AGENT_CONFIG)", fromEnv))
      expect(readFileSync(named, "utf8")).toBe(settings)
    }).pipe(Effect.provide(loaded(named))))
})

// ---- regular files only, sizes bounded ------------------------------------------------------------------

const fifo = join(narrow.data, "fifo")
const fifoRefusal = (operation: string) => new NotARegularFile({ skill: "probe", operation, path: "~/data/fifo", resolved: fifo, kind: "FIFO" })
const specialFiles: ReadonlyArray<Attempt> = [
  { name: "fs.readFile of a FIFO", meta: { paths: ["~/data/**"] }, code: "export const run = () => fs.readFile('~/data/fifo')", error: fifoRefusal("fs.readFile") },
  { name: "fs.writeFile to a FIFO", meta: { paths: ["~/data/**"] }, code: "export const run = () => fs.writeFile('~/data/fifo', 'x')", error: fifoRefusal("fs.writeFile") },
  { name: "fs.appendFile to a FIFO", meta: { paths: ["~/data/**"] }, code: "export const run = () => fs.appendFile('~/data/fifo', 'x')", error: fifoRefusal("fs.appendFile") },
  { name: "fs.open of a FIFO for reading", meta: { paths: ["~/data/**"] }, code: "export const run = () => fs.read(fs.open('~/data/fifo'))", error: fifoRefusal("fs.open") },
  { name: "fs.open of a FIFO for writing", meta: { paths: ["~/data/**"] }, code: "export const run = () => fs.open('~/data/fifo', 'w')", error: fifoRefusal("fs.open") }
]

layer(sandboxTestLayer(narrow))("reads and writes touch regular files only", (it) => {
  it.effect.each(specialFiles)("refuses $name at once", expectRefusal)

  it.effect("fs.readFile of a directory is an ordinary error the skill may catch", () =>
    Effect.gen(function*() {
      const { result } = yield* call("export function run() { try { return fs.readFile('~/data/sub') } catch (e) { return e.message } }", { paths: ["~/data/**"] })
      expect(result).toBe("fs.readFile: EISDIR: illegal operation on a directory")
    }))
})

const environ = (operation: string, path: string, resolved: string) => pathRefusal(operation, path, resolved, "system", [resolved.split("/").slice(0, 2).join("/")])
const systemAttempts: ReadonlyArray<Attempt> = [
  { name: "fs.readFile('/proc/self/environ') (the API key)", meta: { paths: ["/**"] }, code: "export const run = () => fs.readFile('/proc/self/environ')", error: environ("fs.readFile", "/proc/self/environ", `/proc/${process.pid}/environ`) },
  { name: "exec cat /proc/self/environ", meta: { paths: ["/**"], capabilities: ["exec"] }, code: execCode("cat", ["/proc/self/environ"]), error: environ("exec cat", "/proc/self/environ", `/proc/${process.pid}/environ`) },
  { name: "a symlink to /proc/self/environ", meta: { paths: ["/**"] }, code: "export const run = () => fs.readFile('~/data/environ-link')", error: environ("fs.readFile", "~/data/environ-link", `/proc/${process.pid}/environ`) },
  { name: "fs.listDir('/sys/class')", meta: { paths: ["/**"] }, code: "export const run = () => fs.listDir('/sys/class')", error: environ("fs.listDir", "/sys/class", "/sys/class") },
  { name: "fs.writeFile('/dev/null')", meta: { paths: ["/**"] }, code: "export const run = () => fs.writeFile('/dev/null', 'x')", error: environ("fs.writeFile", "/dev/null", "/dev/null") },
  { name: "find / (it would walk /proc)", meta: { paths: ["/**"], capabilities: ["exec"] }, code: execCode("find", ["/", "-name", "environ"]), error: pathRefusal("exec find find", "/", "/", "recursion_protected", ["/proc"]) }
]

layer(sandboxTestLayer(everything))("/proc, /sys and /dev, even under allowed_paths [\"/**\"]", (it) => {
  it.effect.each(systemAttempts)("refuses $name", expectRefusal)

  it.effect("the system refusal names the directory and what to do", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(call("export const run = () => fs.readFile('/proc/self/environ')", { paths: ["/**"] }))
      expect(error.message).toBe(
        `Refused fs.readFile("/proc/self/environ") by skill probe: /proc/${process.pid}/environ is inside /proc, the system's live state and devices (it holds the agent's own environment and its secrets), which no skill may read or write whatever allowed_paths says. Read and write regular files elsewhere.`
      )
    }))
})

describe("sizes are bounded", () => {
  const sparse = join(narrow.data, "sparse.bin")
  const fd = openSync(sparse, "w")
  ftruncateSync(fd, 1024 * 1024 * 1024)
  closeSync(fd)

  layer(sandboxTestLayer(narrow))("a draft's append to a huge sparse file", (it) => {
    it.effect("is refused before anything is copied into scratch", () =>
      Effect.gen(function*() {
        const scratch = join(narrow.home, "scratch-sparse")
        const error = yield* Effect.flip(call("export const run = () => fs.appendFile('~/data/sparse.bin', 'x')", { paths: ["~/data/**"] }, { mode: draft(scratch) }))
        expect(error).toEqual(new WriteLimitExceeded({ skill: "probe", operation: "fs.appendFile", path: "~/data/sparse.bin", attempted: 1024 * 1024 * 1024 + 1, limit: sandboxLimits.maxWriteBytes }))
        expect(error.message).toBe(
          `Stopped skill probe at fs.appendFile("~/data/sparse.bin"): it would bring the bytes the run writes to ${1024 * 1024 * 1024 + 1}, more than the ${sandboxLimits.maxWriteBytes} one run may write (a draft's append first copies the original file into its scratch directory, and that counts). Write less, or split the work into several runs.`
        )
        expect(existsSync(join(scratch, sparse))).toBe(false)
      }))
  })

  layer(sandboxTestLayer(narrow, { maxWriteBytes: 2 * 1024 * 1024 }))("the bytes one run writes", (it) => {
    it.effect("are capped across calls, handles included", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(call(
          `export function run() {
            const mib = 'x'.repeat(1024 * 1024)
            fs.writeFile('~/data/big.txt', mib)
            const h = fs.open('~/data/big2.txt', 'w'); fs.write(h, mib); fs.close(h)
            fs.appendFile('~/data/big.txt', mib)
          }`,
          { paths: ["~/data/**"] }
        ))
        expect(error).toEqual(new WriteLimitExceeded({ skill: "probe", operation: "fs.appendFile", path: "~/data/big.txt", attempted: 3 * 1024 * 1024, limit: 2 * 1024 * 1024 }))
        expect(statSync(join(narrow.data, "big.txt")).size).toBe(1024 * 1024)
      }))
  })
})

// ---- a directory swapped for a symlink while a skill runs -------------------------------------------------

describe("a directory swapped for a symlink while a skill runs", () => {
  const f = narrow
  const swap = join(f.data, "swap")
  const parked = join(f.data, "swap.real")
  const reset = () => {
    rmSync(swap, { recursive: true, force: true })
    rmSync(parked, { recursive: true, force: true })
    mkdirSync(join(swap, "inner"), { recursive: true })
    mkdirSync(join(f.outside, "inner"), { recursive: true })
    writeFileSync(join(swap, "f.txt"), "inside\n")
    writeFileSync(join(f.outside, "f.txt"), "top secret\n")
    for (const name of ["new.txt", "inner/new", "inner/made"]) rmSync(join(f.outside, name), { recursive: true, force: true })
  }
  const swapNow = () => {
    renameSync(swap, parked)
    symlinkSync(f.outside, swap)
  }

  /**
   * Set by each case: the open (counting those under data/swap…) that happens just after the
   * swap, in the window between the check and the open.
   */
  let swapAtOpen = 0
  const swapOnOpen = (node: SandboxHost): SandboxHost => ({
    ...node,
    open: (path, mode) => {
      if (swapAtOpen > 0 && path.startsWith(swap) && --swapAtOpen === 0) swapNow()
      return node.open(path, mode)
    }
  })
  const swapped = (operation: string, path: string, opened: string) =>
    pathRefusal(operation, path, opened, "swapped", ["~/data/**", `${f.data}/**`])

  /**
   * The file access of one skill, as a run in a worker builds it, over a host port that swaps the
   * directory at the chosen moment: these cases need the swap to land between a check and an
   * open, which only a host port of the test's own can place there.
   */
  const filesOver = (host: SandboxHost): FileAccess => {
    const run = makeRunPaths({ host, allowedPaths: f.config.allowed_paths, protectedPaths: [], mode: trusted, maxWriteBytes: sandboxLimits.maxWriteBytes })
    return makeFileAccess(makePathGuard(run, "probe", ["~/data/**"]), "probe")
  }
  const node = nodeSandboxHost({ home: f.home, cwd: f.home })
  const refusalOf = (result: Either.Either<unknown, SandboxError>) =>
    Either.match(result, { onLeft: (error) => ({ _tag: error._tag, message: error.message }), onRight: (value) => ({ _tag: "allowed", message: JSON.stringify(value) }) })

  describe("between the check and the open (the descriptor is checked)", () => {
    beforeEach(() => {
      reset()
      rmSync(join(f.data, "swaplink"), { force: true })
      symlinkSync(swap, join(f.data, "swaplink"))
    })
    const cases: ReadonlyArray<{ readonly name: string; readonly attempt: (files: FileAccess) => Either.Either<unknown, SandboxError>; readonly error: PathNotAllowed; readonly leftover?: string; readonly at?: number }> = [
      // A read first opens the path as written; a descriptor that is not exactly there sends it the careful way, which sees the symlink.
      { name: "fs.readFile reads nothing from outside", attempt: (files) => files.readFile("~/data/swap/f.txt", 1024), error: pathRefusal("fs.readFile", "~/data/swap/f.txt", join(f.outside, "f.txt"), "symlink_escape", ["~/data/**", `${f.data}/**`]) },
      { name: "fs.readFile through a symlink (resolved, then swapped) reads nothing from outside", attempt: (files) => files.readFile("~/data/swaplink/f.txt", 1024), error: swapped("fs.readFile", "~/data/swaplink/f.txt", join(f.outside, "f.txt")), at: 2 },
      { name: "fs.open('r') through a symlink reads nothing from outside", attempt: (files) => files.open("~/data/swaplink/f.txt", "r"), error: swapped("fs.open", "~/data/swaplink/f.txt", join(f.outside, "f.txt")), at: 2 },
      { name: "fs.writeFile truncates nothing outside", attempt: (files) => files.writeFile("fs.writeFile", "~/data/swap/f.txt", "pwned", false), error: swapped("fs.writeFile", "~/data/swap/f.txt", join(f.outside, "f.txt")) },
      { name: "fs.writeFile leaves no new file outside", attempt: (files) => files.writeFile("fs.writeFile", "~/data/swap/new.txt", "pwned", false), error: swapped("fs.writeFile", "~/data/swap/new.txt", join(f.outside, "new.txt")), leftover: "new.txt" },
      { name: "fs.open('w') leaves no new file outside", attempt: (files) => files.open("~/data/swap/new.txt", "w"), error: swapped("fs.open", "~/data/swap/new.txt", join(f.outside, "new.txt")), leftover: "new.txt" },
      { name: "fs.listDir lists nothing outside", attempt: (files) => files.listDir("~/data/swap/inner"), error: swapped("fs.listDir", "~/data/swap/inner", join(f.outside, "inner")) },
      { name: "fs.mkdir makes nothing outside", attempt: (files) => files.mkdir("~/data/swap/inner/made"), error: swapped("fs.mkdir", "~/data/swap/inner/made", join(f.outside, "inner")), leftover: "inner/made" }
    ]
    it.each(cases)("$name", ({ at, attempt, error, leftover }) => {
      swapAtOpen = at ?? 1
      expect(refusalOf(attempt(filesOver(swapOnOpen(node))))).toEqual({ _tag: error._tag, message: error.message })
      expect(readFileSync(join(f.outside, "f.txt"), "utf8")).toBe("top secret\n")
      if (leftover !== undefined) expect(existsSync(join(f.outside, leftover))).toBe(false)
    })

    it("the swapped message says what happened and what to do", () => {
      expect(swapped("fs.readFile", "~/data/swap/f.txt", join(f.outside, "f.txt")).message).toBe(
        `Refused fs.readFile("~/data/swap/f.txt") by skill probe: the file it opened turned out to be ${join(f.outside, "f.txt")}, outside the declared and allowed paths (~/data/**, ${f.data}/**): a directory on the path was replaced by a symlink while the skill ran. Nothing was read or written there. Check what changes that directory, and keep such directories out of allowed_paths.`
      )
    })
  })

  describe("a file read once, whose directory then moves out of allowed_paths behind a symlink", () => {
    const movedTo = join(f.outside, "moved")
    /** Before the second open under data/swap: the directory moves out, a symlink takes its place, and `then` runs. */
    const moveOnOpen = (then: () => void): SandboxHost => {
      let count = 2
      return {
        ...node,
        open: (path, mode) => {
          if (path.startsWith(swap) && --count === 0) {
            rmSync(movedTo, { recursive: true, force: true })
            renameSync(swap, movedTo)
            symlinkSync(movedTo, swap)
            then()
          }
          return node.open(path, mode)
        }
      }
    }
    const twoReads = (files: FileAccess) =>
      Either.all([files.readFile("~/data/swap/f.txt", 1024), files.readFile("~/data/swap/f.txt", 1024)]).pipe(
        Either.map((reads) => reads.map((read) => (read._tag === "Read" ? read.text : "too large")))
      )

    it("reads back only the bytes it read while allowed, while the file is unchanged", () => {
      reset()
      expect(twoReads(filesOver(moveOnOpen(() => undefined)))).toEqual(Either.right(["inside\n", "inside\n"]))
    })

    it("is refused once the file changed out there", () => {
      reset()
      const changed = moveOnOpen(() => writeFileSync(join(movedTo, "f.txt"), "private now\n", { flag: "a" }))
      expect(refusalOf(twoReads(filesOver(changed)))).toEqual({
        _tag: "PathNotAllowed",
        message: pathRefusal("fs.readFile", "~/data/swap/f.txt", join(movedTo, "f.txt"), "symlink_escape", ["~/data/**", `${f.data}/**`]).message
      })
    })
  })

  describe("by another process", () => {
    const children: Array<ChildProcess> = []
    afterAll(() => {
      for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
    })
    layer(sandboxTestLayer(f))("", (it) => {
      it.effect("between two reads of one run: the second read is refused", () =>
        Effect.gen(function*() {
          reset()
          const ready = join(f.data, "ready")
          const done = join(f.data, "swapped")
          for (const flag of [ready, done]) rmSync(flag, { force: true })
          // The other process waits for the skill's signal, swaps the directory, and signals back.
          const child = spawn("sh", ["-c", `while [ ! -e "$1" ]; do :; done; mv "$2" "$3" && ln -s "$4" "$2" && touch "$5"`, "swapper", ready, swap, parked, f.outside, done], { stdio: "ignore" })
          children.push(child)
          const error = yield* Effect.flip(call(
            `export function run() {
              const first = fs.readFile('~/data/swap/f.txt')
              fs.writeFile('~/data/ready', first)
              while (!fs.exists('~/data/swapped')) {}
              return fs.readFile('~/data/swap/f.txt')
            }`,
            { paths: ["~/data/**"] }
          ))
          expect({ _tag: error._tag, message: error.message }).toEqual({
            _tag: "PathNotAllowed",
            message: pathRefusal("fs.readFile", "~/data/swap/f.txt", join(f.outside, "f.txt"), "symlink_escape", ["~/data/**", `${f.data}/**`]).message
          })
        }))

      it.effect("while it flips back and forth, no read ever returns what is outside", () =>
        Effect.gen(function*() {
          reset()
          const flipper = `const fs = require("node:fs");
            const [swap, parked, outside] = process.argv.slice(1);
            for (;;) { try { fs.renameSync(swap, parked); fs.symlinkSync(outside, swap); fs.unlinkSync(swap); fs.renameSync(parked, swap) } catch {} }`
          const child = spawn(process.execPath, ["-e", flipper, swap, parked, f.outside], { stdio: "ignore" })
          children.push(child)
          const outcomes: Array<string> = []
          for (let round = 0; round < 10; round++) {
            const outcome = yield* Effect.either(call(
              `export function run() {
                const seen = {}
                for (let i = 0; i < 2000; i++) { try { seen[fs.readFile('~/data/swap/f.txt')] = true } catch (e) { seen['error'] = true } }
                return Object.keys(seen)
              }`,
              { paths: ["~/data/**"] }
            ))
            if (outcome._tag === "Right") {
              expect(outcome.right.result).not.toContain("top secret\n")
              outcomes.push("read")
            } else {
              const error = outcome.left
              expect(error._tag).toBe("PathNotAllowed")
              expect(error._tag === "PathNotAllowed" && ["symlink_escape", "swapped"].includes(error.reason)).toBe(true)
              outcomes.push(error._tag === "PathNotAllowed" ? error.reason : error._tag)
            }
          }
          child.kill("SIGKILL")
          expect(outcomes).toHaveLength(10)
        }), { timeout: 60_000 })
    })
  })
})

describe("the environment of a command", () => {
  it("holds PATH, LC_ALL and a TMPDIR inside the run's own directory, and no secret", () => {
    const dir = mkdtempSync(join(tmpdir(), "luallm-reach-env-"))
    const before = process.env["LUALLM_AGENT_LLM_API_KEY"]
    process.env["LUALLM_AGENT_LLM_API_KEY"] = "sk-must-not-leak"
    try {
      const result = nodeSandboxHost().spawn("cat", ["/proc/self/environ"], { dir, timeoutMs: 5000, maxBytes: 65536, memoryBytes: 64 * 1024 * 1024, fileBytes: 1024 })
      expect(result.stdout.split("\u0000").filter((line) => line !== "").sort()).toEqual(["LC_ALL=C", "PATH=/usr/bin:/bin", `TMPDIR=${join(dir, "tmp")}`])
      expect(readdirSync(join(dir, "work"))).toEqual([])
    } finally {
      if (before === undefined) delete process.env["LUALLM_AGENT_LLM_API_KEY"]
      else process.env["LUALLM_AGENT_LLM_API_KEY"] = before
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("the limits of a command", () => {
  it("runs with its address space, each file it writes and core dumps bounded", () => {
    const dir = mkdtempSync(join(tmpdir(), "luallm-reach-limits-"))
    try {
      const result = nodeSandboxHost().spawn("cat", ["/proc/self/limits"], { dir, timeoutMs: 5000, maxBytes: 65536, memoryBytes: 48 * 1024 * 1024, fileBytes: 4096 })
      const limit = (name: string) => result.stdout.split("\n").find((line) => line.startsWith(name))?.slice(26).trim().split(/\s+/).slice(0, 2)
      expect(limit("Max address space")).toEqual([String(48 * 1024 * 1024), String(48 * 1024 * 1024)])
      expect(limit("Max file size")).toEqual(["4096", "4096"])
      expect(limit("Max core file size")).toEqual(["0", "0"])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("on the task path: a plan's shell_safe arguments with approval_tiers.skill_exec auto", () => {
  it.scoped("a planned sort -o into skills.allowed_dir and an abbreviated --outp at the audit log fail their nodes, writing nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const base = testConfig(dir)
      const config = testConfig(dir, {
        skills: { ...base.skills, builtin_dir: builtinSkillsDir },
        approval_tiers: { ...base.approval_tiers, task_confirmation: "auto", skill_exec: "auto" }
      })
      mkdirSync(join(dir, "data"), { recursive: true })
      writeFileSync(join(dir, "data", "victim.txt"), "b\na\n")
      const evil = join(config.skills.allowed_dir, "evil.js")
      const node = (id: string, args: ReadonlyArray<string>) => ({ id, action: "skill", skill_name: "shell_safe", skill_args: { command: "sort", args }, max_retries: 0 })
      const plan = JSON.stringify({
        nodes: [node("plant", ["-o", evil, `${dir}/data/victim.txt`]), node("cut", [`--outp=${config.audit.path}`, `${dir}/data/victim.txt`])]
      })
      const { task } = yield* Effect.flatMap(Agent, (agent) => agent.run("Sort my file.")).pipe(
        Effect.provide(agentLayer(config, [FakeReply.content(plan, { when: /^Job: plan/ })], dir))
      )
      expect(task.state).toBe("failed")
      expect(task.error).toContain(`Refused exec("sort") by skill shell_safe: sort's -o writes files: it names the file sort writes its output to.`)
      expect(task.error).toContain(`Refused exec("sort") by skill shell_safe: --outp abbreviates --output, and sort's --output writes files: it names the file sort writes its output to.`)
      expect(existsSync(evil)).toBe(false)
      expect(readFileSync(join(dir, "data", "victim.txt"), "utf8")).toBe("b\na\n")
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("through `skills run shell_safe --allow-exec`, as a user runs it", () => {
  it("refuses sort -o into skills.allowed_dir with one error line, and writes nothing", () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "luallm-reach-cli-")))
    try {
      mkdirSync(join(dir, "data"))
      writeFileSync(join(dir, "data", "victim.txt"), "b\na\n")
      writeFileSync(join(dir, "luallm-agent.json"), JSON.stringify({ allowed_paths: [`${dir}/**`], state_dir: `${dir}/state`, skills: { allowed_dir: `${dir}/skills` } }))
      const evil = join(dir, "skills", "evil.js")
      const args = JSON.stringify({ command: "sort", args: ["-no", evil, `${dir}/data/victim.txt`] })
      const run = runCli(["skills", "run", "shell_safe", "--args", args, "--allow-exec"], { env: { HOME: dir }, cwd: dir })
      expect(run.stderr.trim()).toBe(
        `error: Refused exec("sort") by skill shell_safe: sort's -o writes files: it names the file sort writes its output to (in -no). The whitelist is fixed: change the skill to do this another way.`
      )
      expect(run.code).not.toBe(0)
      expect(existsSync(evil)).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
