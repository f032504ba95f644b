/**
 * The `Skills` service (SPEC parts 11–12): finding, reading and checking skill files.
 * A skill is `<dir>/<name>.js` with a `/* @skill {json} *\/` header (read without running
 * the code, see `core/skillMeta.ts`), tests in `<name>.test.js` beside it. Names are
 * identifiers, never paths. Running skills is `SkillRunner`'s job.
 */
import { FileSystem, Path } from "@effect/platform"
import { Config, Context, Data, Effect, Either, Layer, Option } from "effect"
import { normalizePath } from "../core/pathGlob.ts"
import { globWithin, isSkillName, parseMetadata as parseHeader, type SkillMetadata } from "../core/skillMeta.ts"
import type { AuditWriteError } from "./Audit.ts"
import { AppConfig } from "./Config.ts"
import { draft, Sandbox, type SkillSource } from "./Sandbox.ts"

export class InvalidSkillName extends Data.TaggedError("InvalidSkillName")<{ readonly name: string }> {
  override get message() {
    return `"${this.name}" is not a skill name: names are identifiers ([a-z][a-z0-9_]*), never paths. Use the name from \`luallm-agent skills list\`.`
  }
}

export class SkillNotFound extends Data.TaggedError("SkillNotFound")<{
  readonly name: string
  readonly searched: ReadonlyArray<string>
}> {
  override get message() {
    return `No skill ${this.name}: looked for ${this.name}.js in ${this.searched.join(", ")}. Check the name with \`luallm-agent skills list\`.`
  }
}

export class SkillUnreadable extends Data.TaggedError("SkillUnreadable")<{ readonly file: string; readonly reason: string }> {
  override get message() {
    return `Could not read ${this.file}: ${this.reason}. Check that the file exists and is readable.`
  }
}

export class MetadataInvalid extends Data.TaggedError("MetadataInvalid")<{
  readonly file: string
  readonly reason: string
  readonly line: number | null
}> {
  override get message() {
    const where = this.line === null ? this.file : `${this.file}:${this.line}`
    return `The skill header of ${where} is invalid: ${this.reason}. Fix the header: a skill begins with /* @skill {"name": "…", "version": "1.0.0", "public_functions": ["run"]} */.`
  }
}

export class DependencyMissing extends Data.TaggedError("DependencyMissing")<{
  readonly skill: string
  readonly dependency: string
  readonly searched: ReadonlyArray<string>
}> {
  override get message() {
    return `Skill ${this.skill} depends on ${this.dependency}, which is not in ${this.searched.join(", ")}. Dependencies must be approved skills; approve ${this.dependency} first or remove it from "dependencies".`
  }
}

export class DependencyCycle extends Data.TaggedError("DependencyCycle")<{ readonly cycle: ReadonlyArray<string> }> {
  override get message() {
    return `Skill dependencies form a cycle: ${this.cycle.join(" → ")}. Remove one of these dependencies.`
  }
}

export class SkillInvalid extends Data.TaggedError("SkillInvalid")<{
  readonly file: string
  readonly problems: ReadonlyArray<string>
}> {
  override get message() {
    return [`Skill ${this.file} is not valid:`, ...this.problems.map((p) => `  - ${p}`), "Fix these problems in the file and check it again."].join("\n")
  }
}

export type SkillLoadError = InvalidSkillName | SkillNotFound | SkillUnreadable | MetadataInvalid
export type DependencyError = DependencyMissing | DependencyCycle | SkillUnreadable | MetadataInvalid

export interface LoadedSkill extends SkillSource {
  readonly dir: string
}

/** One entry of `list`: a readable skill, or a file whose header is broken (never dropped). */
export type SkillListing =
  | { readonly _tag: "Valid"; readonly file: string; readonly meta: SkillMetadata }
  | { readonly _tag: "Invalid"; readonly file: string; readonly error: SkillUnreadable | MetadataInvalid }

export interface SkillsShape {
  /** Reads the header of a skill file without running it. */
  readonly parseMetadata: (file: string) => Effect.Effect<SkillMetadata, SkillUnreadable | MetadataInvalid>
  /** Finds `<name>.js` in the first of `searchDirs` that has it (default: the trusted dirs). */
  readonly load: (name: string, searchDirs?: ReadonlyArray<string>) => Effect.Effect<LoadedSkill, SkillLoadError>
  /** Every skill `meta` needs, transitively, dependencies first (depth-first). */
  readonly resolveDependencies: (meta: SkillMetadata, searchDirs?: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<LoadedSkill>, DependencyError>
  /** The skills in `dir` (test files skipped), sorted by file name; an absent dir is empty. */
  readonly list: (dir: string) => Effect.Effect<ReadonlyArray<SkillListing>, SkillUnreadable>
  /**
   * Checks a skill: header, name, dependencies, declared paths inside `allowed_paths`, and —
   * loading it in a draft sandbox — that its public functions exist.
   */
  readonly validate: (file: string) => Effect.Effect<SkillMetadata, SkillInvalid | AuditWriteError>
  /** Where skills come from: approved then shipped (trusted), and the agent's drafts. */
  readonly trustedDirs: ReadonlyArray<string>
  readonly draftDirs: ReadonlyArray<string>
}

export class Skills extends Context.Tag("Skills")<Skills, SkillsShape>() {}

const MAX_SKILL_BYTES = 1024 * 1024

export const makeSkills = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const sandbox = yield* Sandbox
  const { config } = yield* AppConfig
  const home = Option.getOrElse(yield* Effect.orElseSucceed(Config.option(Config.string("HOME")), () => Option.none()), () => "/")
  const trustedDirs = [config.skills.allowed_dir, config.skills.builtin_dir]
  const draftDirs = [config.skills.agent_dir]

  const readText = (file: string) =>
    Effect.gen(function*() {
      const info = yield* fs.stat(file)
      if (Number(info.size) > MAX_SKILL_BYTES) {
        return yield* new SkillUnreadable({ file, reason: `it has ${info.size} bytes, more than the ${MAX_SKILL_BYTES} a skill may have` })
      }
      return yield* fs.readFileString(file)
    }).pipe(Effect.catchTag("SystemError", "BadArgument", (error) => new SkillUnreadable({ file, reason: error.message })))

  const decodeHeader = (code: string, file: string) =>
    Either.mapLeft(parseHeader(code, file), (problem) => new MetadataInvalid(problem))

  /** Reads a skill file and checks that its declared name is its file name. */
  const readSkill = (file: string) =>
    Effect.gen(function*() {
      const code = yield* readText(file)
      const meta = yield* decodeHeader(code, file)
      const expected = path.basename(file, ".js")
      if (meta.name !== expected) {
        return yield* new MetadataInvalid({ file, line: null, reason: `it declares the name "${meta.name}" but the file is ${expected}.js` })
      }
      return { meta, file, code, dir: path.dirname(file) } satisfies LoadedSkill
    })

  const parseMetadata: SkillsShape["parseMetadata"] = (file) =>
    Effect.flatMap(readText(file), (code) => decodeHeader(code, file))

  const load: SkillsShape["load"] = (name, searchDirs = trustedDirs) =>
    Effect.gen(function*() {
      if (!isSkillName(name)) return yield* new InvalidSkillName({ name })
      for (const dir of searchDirs) {
        const file = path.join(dir, `${name}.js`)
        if (yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))) return yield* readSkill(file)
      }
      return yield* new SkillNotFound({ name, searched: searchDirs })
    })

  const resolveDependencies: SkillsShape["resolveDependencies"] = (meta, searchDirs = trustedDirs) =>
    Effect.gen(function*() {
      const order: Array<LoadedSkill> = []
      const done = new Set<string>()
      const visit = (name: string, chain: ReadonlyArray<string>): Effect.Effect<void, DependencyError> =>
        Effect.gen(function*() {
          if (chain.includes(name)) return yield* new DependencyCycle({ cycle: [...chain.slice(chain.indexOf(name)), name] })
          if (done.has(name)) return
          const skill = yield* load(name, searchDirs).pipe(
            Effect.catchTags({
              SkillNotFound: () => new DependencyMissing({ skill: chain.at(-1) ?? meta.name, dependency: name, searched: searchDirs }),
              InvalidSkillName: () => new DependencyMissing({ skill: chain.at(-1) ?? meta.name, dependency: name, searched: searchDirs })
            })
          )
          yield* Effect.forEach(skill.meta.dependencies, (dependency) => visit(dependency, [...chain, name]), { discard: true })
          done.add(name)
          order.push(skill)
        })
      yield* Effect.forEach(meta.dependencies, (dependency) => visit(dependency, [meta.name]), { discard: true })
      return order
    })

  const list: SkillsShape["list"] = (dir) =>
    Effect.gen(function*() {
      if (!(yield* fs.exists(dir).pipe(Effect.orElseSucceed(() => false)))) return []
      const names = yield* fs.readDirectory(dir).pipe(
        Effect.mapError((error) => new SkillUnreadable({ file: dir, reason: error.message }))
      )
      const files = names.filter((name) => name.endsWith(".js") && !name.endsWith(".test.js")).sort()
      return yield* Effect.forEach(files, (name) => {
        const file = path.join(dir, name)
        return readSkill(file).pipe(
          Effect.map((skill): SkillListing => ({ _tag: "Valid", file, meta: skill.meta })),
          Effect.catchAll((error) => Effect.succeed<SkillListing>({ _tag: "Invalid", file, error }))
        )
      })
    })

  /** The declared globs that no `allowed_paths` glob contains. */
  const pathsOutsideAllowed = (meta: SkillMetadata): ReadonlyArray<string> =>
    meta.paths.filter((glob) => {
      const absolute = normalizePath(glob, path.resolve("."), home)
      return !config.allowed_paths.some((allowed) => globWithin(absolute, allowed))
    })

  /** Loads the skill as a draft (its top-level code runs, its writes go nowhere real). */
  const exportedFunctions = (skill: LoadedSkill, dependencies: ReadonlyArray<LoadedSkill>) =>
    Effect.scoped(
      Effect.flatMap(fs.makeTempDirectoryScoped({ prefix: "luallm-validate-" }), (scratch) =>
        sandbox.exportedFunctions({
          skill,
          dependencies: new Map(dependencies.map((d) => [d.meta.name, d])),
          mode: draft(scratch),
          grantExec: false
        }))
    )

  const validate: SkillsShape["validate"] = (file) =>
    Effect.gen(function*() {
      const skill = yield* readSkill(file).pipe(Effect.mapError((error) => new SkillInvalid({ file, problems: [error.message] })))
      const pathProblems = pathsOutsideAllowed(skill.meta).map((glob) =>
        `the declared path "${glob}" is not inside allowed_paths (${config.allowed_paths.join(", ") || "none"})`)
      const dependencies = yield* Effect.either(resolveDependencies(skill.meta))
      const exported = yield* Effect.either(exportedFunctions(skill, Either.getOrElse(dependencies, () => [])))
      const loadProblems = Either.match(exported, {
        onLeft: (error) => error._tag === "AuditWriteError" ? Either.left(error) : Either.right([`loading it in the sandbox failed: ${error.message}`]),
        onRight: (names) =>
          Either.right(skill.meta.public_functions.flatMap((fn) =>
            names.includes(fn) ? [] : [`the public function ${fn} is not exported (it exports ${names.join(", ") || "nothing"})`]))
      })
      const problems = [
        ...pathProblems,
        ...Either.match(dependencies, { onLeft: (error) => [error.message], onRight: () => [] }),
        ...(yield* loadProblems)
      ]
      if (problems.length > 0) return yield* new SkillInvalid({ file, problems })
      return skill.meta
    })

  return Skills.of({ parseMetadata, load, resolveDependencies, list, validate, trustedDirs, draftDirs })
})

export const SkillsLive: Layer.Layer<Skills, never, AppConfig | Sandbox | FileSystem.FileSystem | Path.Path> = Layer.effect(
  Skills,
  makeSkills
)
