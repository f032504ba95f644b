/**
 * The package as a user gets it: `npm pack` the project, `npm install` the tarball into a fresh
 * app (dependencies from the npm cache that `npm ci` filled, `--prefer-offline`), then use it
 * there: the bin, the README's two embedding examples as plain Node scripts against a model
 * server on 127.0.0.1, Deno, and a strict NodeNext TypeScript app type-checked by the project's
 * own tsc against the shipped declarations.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { homedir, tmpdir } from "node:os"
import { join } from "node:path"
import { openAiServer } from "../support/openaiServer.ts"

const root = join(import.meta.dirname, "..", "..")
const work = realpathSync(mkdtempSync(join(tmpdir(), "luallm-agent-pack-")))
const app = join(work, "app")
const home = join(work, "home")
/** The npm cache that `npm ci` filled: the app's install and npx read it, whatever HOME is. */
const npmCache = process.env["npm_config_cache"] ?? join(homedir(), ".npm")

interface Ran {
  readonly code: number | string
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end without blocking this process (the model server lives here). */
const run = (command: string, args: ReadonlyArray<string>, cwd: string): Promise<Ran> =>
  new Promise((resolve) => {
    // npm passes its own configuration down as npm_* variables; the app's npm must not see the
    // project's. HOME is the test's, so nothing reads or writes the user's config and state.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_")))
    const options = { cwd, env: { ...env, HOME: home, npm_config_cache: npmCache }, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 }
    execFile(command, args, options, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : error.code ?? 1, stdout, stderr }))
  })

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

let tarballFiles: ReadonlyArray<string> = []

beforeAll(async () => {
  mkdirSync(app, { recursive: true })
  mkdirSync(home)
  const packStart = performance.now()
  // `npm pack` runs `prepare`, which finds dist/ up to date (the global setup built it).
  const packed = await run("npm", ["pack", "--json", "--pack-destination", work], root)
  expect(packed).toMatchObject({ code: 0 })
  const [manifest] = JSON.parse(packed.stdout) as ReadonlyArray<{ filename: string; files: ReadonlyArray<{ path: string }> }>
  if (manifest === undefined) throw new Error(`npm pack printed no manifest: ${packed.stdout}`)
  tarballFiles = manifest.files.map((file) => file.path)
  const packTime = seconds(packStart)

  // The app allows luallm-agent's scripts, so `prepare` would run if npm ran it for a tarball:
  // it would fail there (scripts/ is not shipped), and so would the install.
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "pack-test-app", private: true, type: "module", allowScripts: { "luallm-agent": true } }))
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { version: string }> }
  const typesNode = `@types/node@${lock.packages["node_modules/@types/node"]?.version ?? "20"}`
  const installStart = performance.now()
  const installed = await run("npm", ["install", join(work, manifest.filename), typesNode, "--prefer-offline", "--no-audit", "--no-fund"], app)
  expect(installed).toMatchObject({ code: 0 })
  console.info(`npm pack: ${packTime}, npm install of the tarball: ${seconds(installStart)}`)
}, 300_000)

afterAll(() => rmSync(work, { recursive: true, force: true }))

/** A README code block, with its placeholders (server URL, app directory) pointed at this test's. */
const readmeExample = (heading: string, language: string, serverUrl: string, appDir: string): string => {
  const readme = readFileSync(join(root, "README.md"), "utf8")
  const start = readme.indexOf(heading)
  const block = new RegExp("```" + language + "\\n([\\s\\S]*?)```").exec(readme.slice(start))?.[1]
  expect(start).toBeGreaterThan(-1)
  expect(block).toContain("http://127.0.0.1:8080")
  expect(block).toContain("/var/lib/my-app")
  return (block ?? "").replaceAll("http://127.0.0.1:8080", serverUrl).replaceAll("/var/lib/my-app", appDir)
}

const notes = "Local models are private.\nThey run on your own machine.\nThey never send your notes anywhere.\n"

/**
 * The model behind the README's request: a plan that reads the file with the shipped
 * `read_file` skill and asks the model to count its lines, then the count of what it was given.
 */
const linesModel = (message: string): string => {
  const path = /(\/\S+\/notes\.txt)/.exec(message)?.[1]
  if (message.includes("Request:") && path !== undefined) {
    return JSON.stringify({
      nodes: [
        { id: "notes", action: "skill", skill_name: "read_file", skill_args: { path } },
        { id: "answer", action: "llm_call", prompt_template: "Count the lines of this text:\n{notes}", depends_on: ["notes"] }
      ]
    })
  }
  const text = message.split("Count the lines of this text:\n")[1]
  return text === undefined ? "I do not know." : `There are ${text.split("\n").filter((line) => line.trim() !== "").length} lines.`
}

/** Runs a README example in the app against a model server on 127.0.0.1; returns what it printed. */
const runReadmeExample = (heading: string, language: string, file: string) =>
  Effect.gen(function*() {
    const server = yield* openAiServer({ reply: linesModel })
    const appDir = join(work, file.replace(/\W/g, "-"))
    mkdirSync(join(appDir, "data"), { recursive: true })
    writeFileSync(join(appDir, "data", "notes.txt"), notes)
    writeFileSync(join(app, file), readmeExample(heading, language, server.url, appDir))
    const ran = yield* Effect.promise(() => run(process.execPath, [file], app))
    const readTheFile = server.received().some((request) => JSON.stringify(request.body).includes("They never send your notes anywhere."))
    return { ran, readTheFile }
  })

describe("the packed package, installed into an app", () => {
  it("holds the built CLI, library, declarations, skills with their tests, README and LICENSE, and nothing else", () => {
    const shipped = /^(package\.json|README\.md|LICENSE|SECURITY\.md|bin\/luallm-agent\.cjs|dist\/[\w-]+\.cjs|dist\/index\.js(\.map)?|dist\/types\/[\w/]+\.d\.ts|skills\/\w+(\.test)?\.js|demo\/cassette\.jsonl)$/
    expect(tarballFiles.filter((file) => !shipped.test(file))).toEqual([])
    expect(tarballFiles).toEqual(expect.arrayContaining(["bin/luallm-agent.cjs", "dist/cli.cjs", "dist/index.js", "dist/types/index.d.ts", "LICENSE", "README.md"]))
    expect(tarballFiles.filter((file) => /^dist\/(bench|soak)\./.test(file))).toEqual([])
    const skills = tarballFiles.filter((file) => /^skills\/\w+\.js$/.test(file) && !file.endsWith(".test.js"))
    expect(skills).toContain("skills/read_file.js")
    expect(skills.filter((skill) => !tarballFiles.includes(skill.replace(/\.js$/, ".test.js")))).toEqual([])
  })

  it("arrives built: installing the tarball runs no build, and the package has no build script to run", () => {
    const installed = join(app, "node_modules", "luallm-agent")
    expect(existsSync(join(installed, "dist", "cli.cjs"))).toBe(true)
    expect(existsSync(join(installed, "scripts"))).toBe(false)
    expect(existsSync(join(installed, "src"))).toBe(false)
    expect(existsSync(join(installed, "dist", ".build.json"))).toBe(false)
  })

  it("runs its bin with npx, which finds the shipped skills in the installed package", async () => {
    const help = await run("npx", ["luallm-agent", "--help"], app)
    expect(help).toMatchObject({ code: 0, stderr: "" })
    expect(help.stdout).toContain("luallm-agent 0.1.0")
    expect(help.stdout).toMatch(/\brun\b[\s\S]*\bresume\b/)
    const skills = await run("npx", ["luallm-agent", "skills", "list"], app)
    expect(skills).toMatchObject({ code: 0 })
    expect(skills.stdout).toContain("read_file")
    expect(skills.stdout).toContain(join(app, "node_modules", "luallm-agent", "skills"))
  })

  it("runs the demo from the installed package, with the cassette it ships", async () => {
    const demo = await run("npx", ["luallm-agent", "demo"], app)
    expect(demo).toMatchObject({ code: 0 })
    expect(demo.stdout).toContain(join(app, "node_modules", "luallm-agent", "demo", "cassette.jsonl"))
    expect(demo.stdout).toMatch(/complete/)
  })

  it.scoped("runs the README's Effect example as written, from plain Node, with the shipped read_file skill", () =>
    Effect.gen(function*() {
      const { ran, readTheFile } = yield* runReadmeExample("### In an Effect app", "ts", "readme-effect.mjs")
      expect(ran).toMatchObject({ code: 0, stderr: "" })
      expect(ran.stdout).toContain("complete { answer: 'There are 3 lines.' }")
      expect(readTheFile).toBe(true)
    }))

  it.scoped("runs the README's Promise example as written, from plain Node", () =>
    Effect.gen(function*() {
      const { ran, readTheFile } = yield* runReadmeExample("### With Promises, without Effect", "js", "readme-promise.mjs")
      expect(ran).toMatchObject({ code: 0 })
      expect(ran.stdout).toContain("complete { answer: 'There are 3 lines.' }")
      expect(ran.stderr).toContain("graph_exec → complete")
      expect(readTheFile).toBe(true)
    }))

  it("loads in Deno by the package's name (the built library: Deno refuses TypeScript in node_modules)", async () => {
    writeFileSync(join(app, "deno.mjs"), `import { configInside, createAgent } from "luallm-agent"
const agent = createAgent({ config: configInside(${JSON.stringify(join(work, "deno-agent"))}) })
await agent.close()
console.log(typeof createAgent, configInside("/x").skills.builtin_dir)
`)
    const ran = await run(join(root, "node_modules", ".bin", "deno"), ["run", "--node-modules-dir=manual", "-A", "deno.mjs"], app)
    expect(ran).toMatchObject({ code: 0 })
    expect(ran.stdout.trim()).toBe(`function ${join(app, "node_modules", "luallm-agent", "skills")}`)
  })

  it("type-checks a strict NodeNext TypeScript app (and the README's Effect example) against the shipped declarations", async () => {
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, types: ["node"] },
      files: ["app.ts", "readme-effect.ts"]
    }))
    writeFileSync(join(app, "readme-effect.ts"), readmeExample("### In an Effect app", "ts", "http://127.0.0.1:1", "/tmp/none"))
    writeFileSync(join(app, "app.ts"), `import { Agent, type AgentOutcome, configInside, createAgent, type Progress, TaskInProgress } from "luallm-agent"
import { Effect } from "effect"

const agent = createAgent({
  config: configInside("/tmp/agent"),
  llm: { baseUrl: "http://127.0.0.1:8080" },
  onApproval: (question) =>
    question._tag === "ApproveSkill" ? question.approval.test_report.failed === 0 && question.code.length > 0 : question._tag === "ConfirmPlan",
  onProgress: (progress: Progress) => console.log(progress._tag)
})
const outcome: AgentOutcome = await agent.run("Count the words in notes.txt")
const state: "complete" | "failed" | string = outcome.task.state
const next: string | undefined = outcome.paused?.next_command
// @ts-expect-error run takes the request as a string
await agent.run(42)
// @ts-expect-error the Promise agent has no step(); the Effect service has
agent.step
const viaEffect: Effect.Effect<AgentOutcome, unknown, Agent> = Effect.flatMap(Agent, (service) => service.run("x"))
const tag: "TaskInProgress" = new TaskInProgress({ id: "a", state: "approval" })._tag
console.log(state, next, viaEffect, tag)
await agent.close()
`)
    const checked = await run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app)
    expect(checked).toMatchObject({ code: 0, stdout: "" })
  })
})
