/**
 * Keeps REFERENCE.md true: every service (a `Context.Tag` in src/layers/*.ts or src/Agent.ts)
 * with each of its members, every layer, every exported function of src/core/*.ts and every
 * CLI command must be named in it. Names are read from the source with plain regexes, so a new
 * function or member without documentation fails here.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const read = (path: string) => readFileSync(join(root, path), "utf8")
const tsFiles = (dir: string) =>
  readdirSync(join(root, dir)).filter((name) => name.endsWith(".ts")).sort().map((name) => `${dir}/${name}`)

const reference = read("REFERENCE.md")

/** Drops comments, so that a brace or a `readonly` in a comment cannot confuse the scan. */
const withoutComments = (source: string) => source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1")

/** The text between the `{` at `open` and its matching `}`, with nested brackets blanked out. */
const topLevelOf = (source: string, open: number): string => {
  let depth = 0
  let text = ""
  for (let i = open; i < source.length; i++) {
    const char = source[i] ?? ""
    if ("{([".includes(char)) depth++
    if ("})]".includes(char)) depth--
    if (depth === 0) return text
    text += depth === 1 ? char : " "
  }
  throw new Error(`unbalanced brackets after offset ${open}`)
}

const membersOfBlock = (source: string, open: number): Array<string> =>
  Array.from(topLevelOf(source, open).matchAll(/\breadonly\s+(\w+)\s*\??\s*:/g), (match) => match[1] ?? "")

interface Service {
  readonly tag: string
  readonly file: string
  readonly members: ReadonlyArray<string>
}

/**
 * The members of the shape given to `Context.Tag`: an `XShape` interface, an inline object
 * type, `Effect.Effect.Success<typeof makeX>` (the names `makeX` finally returns), or a queue.
 */
const servicesIn = (file: string): Array<Service> => {
  const source = withoutComments(read(file))
  return Array.from(source.matchAll(/Context\.Tag\("(\w+)"\)<\s*\w+\s*,\s*/g), (match) => {
    const tag = match[1] ?? ""
    const rest = source.slice((match.index ?? 0) + match[0].length)
    const shape = /^(\w+Shape)\b/.exec(rest)
    if (shape !== null) {
      const declaration = new RegExp(`interface\\s+${shape[1]}\\b[^{]*\\{`).exec(source)
      if (declaration === null) throw new Error(`${file}: interface ${shape[1]} of ${tag} not found`)
      return { tag, file, members: membersOfBlock(source, declaration.index + declaration[0].length - 1) }
    }
    if (rest.startsWith("{")) return { tag, file, members: membersOfBlock(rest, 0) }
    const made = /^Effect\.Effect\.Success<typeof (\w+)>/.exec(rest)
    if (made !== null) {
      const start = source.indexOf(`const ${made[1]} =`)
      const returned = Array.from(source.slice(start).matchAll(/\breturn\s*\{([^{}]*)\}\s*\n\}\)/g)).at(0)
      if (start === -1 || returned === undefined) throw new Error(`${file}: what ${made[1]} returns for ${tag} not found`)
      const members = (returned[1] ?? "").split(",").map((entry) => entry.split(":")[0]?.trim() ?? "").filter((name) => name !== "")
      return { tag, file, members }
    }
    // A service that is one of Effect's own data types (a queue the app takes from) has no members of its own.
    if (/^(?:Queue\.(?:Dequeue|Queue)|PubSub\.PubSub)</.test(rest)) return { tag, file, members: [] }
    throw new Error(`${file}: the shape of ${tag} is not an XShape interface, an object type, Success<typeof makeX> or a queue; extend this test`)
  })
}

const services = [...tsFiles("src/layers"), "src/Agent.ts"].flatMap(servicesIn)

/** Exported layers (or functions that build one): a layer-like name whose declaration mentions `Layer`. */
const layers = [...tsFiles("src/layers"), "src/Agent.ts"].flatMap((file) => {
  const source = read(file)
  return Array.from(source.matchAll(/^export const (\w+(?:Live|Test|Fake|Replay|Record|From|Default))\b/gm))
    .filter((match) => /\bLayer\b/.test(source.slice(match.index ?? 0).split("\n\n")[0] ?? ""))
    .map((match) => ({ name: match[1] ?? "", file }))
})

/** Exported functions of a core module: `export function f`, or `export const f = (…` / `<T>(…`. */
const coreFunctions = tsFiles("src/core").flatMap((file) => {
  const source = read(file)
  const patterns = [/^export (?:async )?function\s+(\w+)/gm, /^export const (\w+)\s*(?::[^=\n]+)?=\s*(?:async\s*)?(?:<[^>\n]*>\s*)?\(/gm]
  return patterns.flatMap((pattern) => Array.from(source.matchAll(pattern), (match) => ({ name: match[1] ?? "", file })))
})

const commands = tsFiles("src/shell/commands").flatMap((file) =>
  Array.from(read(file).matchAll(/Cli\.make\(\s*"([\w-]+)"/g), (match) => ({ name: match[1] ?? "", file }))
)

/** The part of REFERENCE.md under the heading that names `title`, up to the next heading of that level or above. */
const section = (title: string): string => {
  const lines = reference.split("\n")
  const start = lines.findIndex((line) => /^#{2,4} /.test(line) && line.includes(title))
  if (start === -1) return ""
  const level = /^#+/.exec(lines[start] ?? "")?.[0].length ?? 2
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && (/^#+/.exec(line)?.[0].length ?? 0) <= level)
  return lines.slice(start, end === -1 ? undefined : end).join("\n")
}

/** A name written as code: `name`, `name(…)` or `name: …` inside backticks. */
const namesAsCode = (text: string, name: string) => new RegExp("`" + name + "(?![\\w-])").test(text)

describe("REFERENCE.md", () => {
  it("finds the services, layers, core functions and commands in the source", () => {
    expect(services.map((s) => s.tag)).toEqual(expect.arrayContaining(["Agent", "AppConfig", "Audit", "Llm", "State", "Approvals"]))
    expect(services.find((s) => s.tag === "Agent")?.members).toEqual(["start", "run", "resume", "plan", "step", "tasks", "task", "reset"])
    expect(services.find((s) => s.tag === "Audit")?.members).toEqual(["log", "flush", "sync"])
    expect(services.find((s) => s.tag === "State")?.members).toEqual(["save", "load", "list", "remove", "lock", "location"])
    expect(coreFunctions.map((f) => f.name)).toEqual(expect.arrayContaining(["computeStats", "parsePlan", "executeGraph", "transition"]))
    expect(layers.map((l) => l.name)).toEqual(expect.arrayContaining(["AuditLive", "AuditTest", "LlmFake", "AgentLive"]))
    expect(commands.map((c) => c.name)).toEqual(expect.arrayContaining(["stats", "doctor", "log"]))
  })

  it("documents every service, under its own heading, with each of its members", () => {
    const undocumented = services.flatMap((service) => {
      const text = section(`\`${service.tag}\``)
      if (text === "") return [`${service.tag} (${service.file}): no heading`]
      return service.members.filter((member) => !namesAsCode(text, member)).map((member) => `${service.tag}.${member} (${service.file})`)
    })
    expect(undocumented).toEqual([])
  })

  it("names every layer", () => {
    expect(layers.filter((layer) => !namesAsCode(reference, layer.name)).map((l) => `${l.name} (${l.file})`)).toEqual([])
  })

  it("documents every exported function of src/core under its module's heading", () => {
    const undocumented = coreFunctions.filter((fn) => !namesAsCode(section(`\`${fn.file}\``), fn.name))
    expect(undocumented.map((fn) => `${fn.name} (${fn.file})`)).toEqual([])
  })

  it("lists every CLI command", () => {
    const cli = section("CLI commands")
    expect(commands.filter((command) => !namesAsCode(cli, command.name)).map((c) => `${c.name} (${c.file})`)).toEqual([])
  })

  it("names every export of the library entry (src/index.ts) in a code span", () => {
    const exported = Array.from(withoutComments(read("src/index.ts")).matchAll(/export\s*\{([^}]*)\}/g))
      .flatMap((match) => (match[1] ?? "").split(","))
      .map((entry) => entry.trim().replace(/^type\s+/, "").split(/\s+as\s+/).at(-1) ?? "")
      .filter((name) => name !== "")
    const spans = Array.from(reference.replace(/```[\s\S]*?```/g, "").matchAll(/`([^`]+)`/g), (match) => match[1] ?? "").join("\n")
    expect(exported).toEqual(expect.arrayContaining(["Agent", "createAgent", "configInside", "AppConfigLive"]))
    expect(exported.filter((name) => !new RegExp(`(?<![\\w-])${name}(?![\\w-])`).test(spans))).toEqual([])
  })

  it("draws the dependency graph of the layers", () => {
    const graph = /```mermaid\n([\s\S]*?)```/.exec(reference)?.[1] ?? ""
    for (const service of ["Agent", "AppConfig", "Audit", "AuditReader", "State", "StoreBackend", "Llm", "Luallm", "Sandbox", "Skills", "SkillRunner", "Approvals"]) {
      expect(graph).toContain(service)
    }
  })
})
