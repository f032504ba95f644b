import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { type AgentConfig, configInside } from "../../src/core/config.ts"
import { Approvals, ApprovalsLive } from "../../src/layers/Approvals.ts"
import { AuditMemory, AuditTest } from "../../src/layers/Audit.ts"
import { AppConfigFrom } from "../../src/layers/Config.ts"
import { tempDir, TestPlatform } from "../support/tmp.ts"

const metadata = {
  name: "csv_sum",
  version: "1.0.0",
  description: "sums",
  dependencies: [],
  paths: ["/data/**"],
  urls: [],
  public_functions: ["run"] as const,
  capabilities: []
}
const passing = { total: 1, passed: 1, failed: 0, results: [{ name: "adds", status: "pass" as const, error: null, duration_ms: 1 }] }

const header = (fields: Record<string, unknown> = {}) => `/* @skill ${JSON.stringify({ ...metadata, ...fields }).replaceAll("*/", "*\\/")} */\n`
const testedCode = `${header()}export function run() { return 1 }\n`
const testedTests = "test('adds', () => {})\n"

/**
 * Approvals over a temp state dir, with a draft and its test written to the drafts dir;
 * `create` keeps the tested copy (as a passing test run does) and files the record.
 */
const setupIn = (configFor: (home: string) => AgentConfig) =>
  Effect.gen(function*() {
    const home = yield* tempDir
    const config = configFor(home)
    mkdirSync(config.skills.agent_dir, { recursive: true })
    const codePath = `${config.skills.agent_dir}/csv_sum.js`
    const testPath = `${config.skills.agent_dir}/csv_sum.test.js`
    writeFileSync(codePath, testedCode)
    writeFileSync(testPath, testedTests)
    const layer = ApprovalsLive.pipe(Layer.provideMerge(AuditTest), Layer.provide(AppConfigFrom(config, { home, cwd: home })))
    const { approvals, audit } = yield* Effect.provide(
      Effect.all({ approvals: Approvals, audit: AuditMemory }),
      layer
    )
    const create = Effect.flatMap(
      approvals.keepTested({ code: testedCode, tests: testedTests }),
      (tested) => approvals.create({ skillName: "csv_sum", metadata, codePath, testPath, testReport: passing, tested, taskId: "task-1" })
    )
    const installed = (name: string) => `${config.skills.allowed_dir}/${name}`
    return { approvals, audit, config, codePath, testPath, create, installed }
  })

const setup = setupIn((home) => configInside(home))

describe("approvals", () => {
  it.scoped("creates a pending record file named after the skill, found by id or prefix", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setup
      const record = yield* create
      expect(record.status).toBe("pending")
      expect(existsSync(`${config.state_dir}/pending_approvals/skill_csv_sum_${record.id}.json`)).toBe(true)
      expect((yield* approvals.listPending).map((r) => r.id)).toEqual([record.id])
      expect((yield* approvals.get(record.id.slice(0, 8))).skill_name).toBe("csv_sum")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("promotes only after a human approved, copying code and test read-only into skills.allowed_dir", () =>
    Effect.gen(function*() {
      const { approvals, audit, codePath, config, create } = yield* setup
      const record = yield* create
      const early = yield* Effect.flip(approvals.promote(record.id))
      expect(early._tag).toBe("PromotionRefused")
      expect(early.message).toContain("only a draft a human approved is promoted")
      expect(yield* approvals.checkPromotion(record)).toBe(false)

      yield* approvals.resolve(record.id, true, "looks right")
      const promoted = yield* approvals.promote(record.id)
      const target = `${config.skills.allowed_dir}/csv_sum.js`
      expect(promoted.promoted_to).toBe(target)
      expect(readFileSync(target, "utf8")).toBe(readFileSync(codePath, "utf8"))
      expect(readFileSync(`${config.skills.allowed_dir}/csv_sum.test.js`, "utf8")).toBe(testedTests)
      expect(statSync(target).mode & 0o777).toBe(0o644)
      // Written under a temporary name and renamed: nothing else is left behind.
      expect(readdirSync(config.skills.allowed_dir).sort()).toEqual(["csv_sum.js", "csv_sum.test.js"])
      expect(yield* approvals.checkPromotion(promoted)).toBe(true)
      expect(yield* approvals.listPending).toEqual([])
      const events = (yield* audit.entries).map((e) => e.event)
      expect(events).toEqual(["approval.create", "approval.resolve", "approval.promote"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("records a rejection with its reason, and a decision is final", () =>
    Effect.gen(function*() {
      const { approvals, create } = yield* setup
      const record = yield* create
      const rejected = yield* approvals.resolve(record.id, false, "writes too much")
      expect(rejected).toMatchObject({ status: "rejected", reason: "writes too much" })
      const again = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(again._tag).toBe("ApprovalAlreadyResolved")
      const promote = yield* Effect.flip(approvals.promote(record.id))
      expect(promote.message).toContain("it is rejected")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to approve a draft edited after its tests ran, until the tests are rerun", () =>
    Effect.gen(function*() {
      const { approvals, codePath, create } = yield* setup
      const record = yield* create
      writeFileSync(codePath, `${header()}export function run() { return fs.readFile('/etc/shadow') }\n`)
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(refused._tag).toBe("PromotionRefused")
      expect(refused.message).toContain("the draft changed after its tests ran")
      const edited = readFileSync(codePath, "utf8")
      yield* approvals.updateTests(record.id, passing, { code: edited, tests: testedTests })
      expect((yield* approvals.resolve(record.id, true)).status).toBe("approved")
      expect((yield* approvals.tested(yield* approvals.get(record.id))).code).toBe(edited)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a rerun of a changed draft takes the header of the new tested copy: the summary shows the paths and capabilities that would be installed", () =>
    Effect.gen(function*() {
      const { approvals, codePath, create } = yield* setup
      const record = yield* create
      // Another task drafted the same skill again, wider, while this one waited for its review.
      const widened = `${header({ version: "2.0.0", paths: ["/**"], capabilities: ["exec"] })}export function run() { return exec("cat", ["/etc/passwd"]) }\n`
      writeFileSync(codePath, widened)
      const rerun = yield* approvals.updateTests(record.id, passing, { code: widened, tests: testedTests })
      expect(rerun).toMatchObject({ version: "2.0.0", metadata: { version: "2.0.0", paths: ["/**"], capabilities: ["exec"] } })
      expect((yield* approvals.get(record.id)).metadata.paths).toEqual(["/**"])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses a rerun whose draft's header names another skill or cannot be read, and keeps the record", () =>
    Effect.gen(function*() {
      const { approvals, create } = yield* setup
      const record = yield* create
      const other = yield* Effect.flip(approvals.updateTests(record.id, passing, { code: `${header({ name: "other" })}export function run() {}\n`, tests: testedTests }))
      expect({ _tag: other._tag, message: other.message }).toEqual({
        _tag: "PromotionRefused",
        message: `Skill csv_sum (approval ${record.id}) was not promoted: the tested code's header names the skill other, not csv_sum. Nothing was copied to skills.allowed_dir; check the draft with \`luallm-agent approvals show ${record.id.slice(0, 8)}\`.`
      })
      const unreadable = yield* Effect.flip(approvals.updateTests(record.id, passing, { code: "/* @skill {} */\nexport function run() {}\n", tests: testedTests }))
      expect(unreadable._tag).toBe("PromotionRefused")
      expect(unreadable.message).toContain("the tested code's header cannot be read (")
      expect(yield* approvals.get(record.id)).toEqual(record)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to approve a record whose summary is not the header of its tested copy", () =>
    Effect.gen(function*() {
      const { approvals, codePath, testPath } = yield* setup
      const tested = yield* approvals.keepTested({ code: testedCode, tests: testedTests })
      // A record that shows narrower paths than the code it would install declares.
      const record = yield* approvals.create({ skillName: "csv_sum", metadata: { ...metadata, paths: ["/data/report.csv"] }, codePath, testPath, testReport: passing, tested, taskId: null })
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect({ _tag: refused._tag, message: refused.message }).toEqual({
        _tag: "PromotionRefused",
        message: `Skill csv_sum (approval ${record.id}) was not promoted: the summary it was filed with is not the header of its tested copy (which declares paths /data/**); rerun its tests (the [R] key in \`luallm-agent resume\`) to review what would be installed. Nothing was copied to skills.allowed_dir; check the draft with \`luallm-agent approvals show ${record.id.slice(0, 8)}\`.`
      })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to approve a draft whose last test run failed", () =>
    Effect.gen(function*() {
      const { approvals, create } = yield* setup
      const record = yield* create
      yield* approvals.updateTests(record.id, { total: 1, passed: 0, failed: 1, results: [] }, { code: testedCode, tests: testedTests })
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(refused.message).toContain("its last test run did not pass (0/1)")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("prints promotion commands that copy the tested copy, quote paths with spaces, and check the hashes", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setupIn((home) => ({ ...configInside(home), state_dir: `${home}/my state` }))
      const record = yield* create
      const tested = `'${config.state_dir}/pending_approvals/tested`
      const dir = config.skills.allowed_dir
      expect(approvals.promotionCommands(record)).toEqual([
        `mkdir -p ${dir}`,
        `cp ${tested}/${record.code_sha256}.js' ${dir}/csv_sum.js`,
        `cp ${tested}/${record.test_sha256}.js' ${dir}/csv_sum.test.js`,
        `chmod 644 ${dir}/csv_sum.js ${dir}/csv_sum.test.js`,
        `printf '%s  %s\\n' ${record.code_sha256} ${dir}/csv_sum.js ${record.test_sha256} ${dir}/csv_sum.test.js | sha256sum -c`
      ])
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a human who runs the printed commands installs exactly the tested copy, and the hash check says so", () =>
    Effect.gen(function*() {
      const { approvals, codePath, create, installed } = yield* setup
      const record = yield* create
      writeFileSync(codePath, "export function run() { return 'swapped' }\n")
      const shell = spawnSync("sh", ["-c", approvals.promotionCommands(record).join(" && ")], { encoding: "utf8" })
      expect(shell.status).toBe(0)
      expect(shell.stdout).toContain(`${installed("csv_sum.js")}: OK`)
      expect(shell.stdout).toContain(`${installed("csv_sum.test.js")}: OK`)
      expect(readFileSync(installed("csv_sum.js"), "utf8")).toBe(testedCode)
      expect(yield* approvals.checkPromotion(record)).toBe(true)
      // A test file that differs from the approved one is not an approved installation.
      writeFileSync(installed("csv_sum.test.js"), "test('x', () => {})\n")
      expect(yield* approvals.checkPromotion(record)).toBe(false)
      const check = spawnSync("sh", ["-c", approvals.promotionCommands(record).at(-1) ?? ""], { encoding: "utf8" })
      expect(check.status).not.toBe(0)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("promotes the tested bytes when the draft's files are swapped after approval", () =>
    Effect.gen(function*() {
      const { approvals, codePath, create, installed, testPath } = yield* setup
      const record = yield* create
      yield* approvals.resolve(record.id, true, "reviewed")
      writeFileSync(testPath, "test('adds', () => { fs.writeFile('/home/ada/.bashrc', 'evil') })\n")
      writeFileSync(codePath, "export function run() { return 'swapped' }\n")
      yield* approvals.promote(record.id)
      expect(readFileSync(installed("csv_sum.js"), "utf8")).toBe(testedCode)
      expect(readFileSync(installed("csv_sum.test.js"), "utf8")).toBe(testedTests)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to approve when the draft's test file was swapped after the tests ran; nothing is installed", () =>
    Effect.gen(function*() {
      const { approvals, config, create, testPath } = yield* setup
      const record = yield* create
      writeFileSync(testPath, "test('adds', () => {})\nrequire('evil')\n")
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(refused._tag).toBe("PromotionRefused")
      expect(refused.message).toContain("the draft changed after its tests ran")
      expect(existsSync(config.skills.allowed_dir)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to promote a tampered tested copy with PromotionRefused, installing nothing", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setup
      const record = yield* create
      yield* approvals.resolve(record.id, true, "reviewed")
      const copy = `${config.state_dir}/pending_approvals/tested/${record.test_sha256}.js`
      chmodSync(copy, 0o644)
      writeFileSync(copy, "test('adds', () => {})\nrequire('evil')\n")
      const refused = yield* Effect.flip(approvals.promote(record.id))
      expect(refused._tag).toBe("PromotionRefused")
      expect(refused.message).toBe(
        `Skill csv_sum (approval ${record.id}) was not promoted: its tested copy ${copy} no longer has the SHA-256 recorded when its tests ran (${record.test_sha256}): it was changed since. ` +
          `Nothing was copied to skills.allowed_dir; check the draft with \`luallm-agent approvals show ${record.id.slice(0, 8)}\`.`
      )
      expect(existsSync(`${config.skills.allowed_dir}/csv_sum.js`)).toBe(false)
      expect(existsSync(`${config.skills.allowed_dir}/csv_sum.test.js`)).toBe(false)
      const shown = yield* Effect.flip(approvals.tested(record))
      expect(shown._tag).toBe("ApprovalCorrupt")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("keeps the tested copy read-only, named by its SHA-256, once per content; the review reads it", () =>
    Effect.gen(function*() {
      const { approvals, codePath, config, create } = yield* setup
      const record = yield* create
      const again = yield* approvals.keepTested({ code: testedCode, tests: testedTests })
      expect(again).toEqual({ code_sha256: record.code_sha256, test_sha256: record.test_sha256 })
      const file = `${config.state_dir}/pending_approvals/tested/${record.code_sha256}.js`
      expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(record.code_sha256)
      expect(statSync(file).mode & 0o777).toBe(0o444)
      writeFileSync(codePath, "export function run() { return 'live' }\n")
      const copy = yield* approvals.tested(record)
      expect(copy).toEqual({ code: testedCode, tests: testedTests, codePath: file, testPath: `${config.state_dir}/pending_approvals/tested/${record.test_sha256}.js` })
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to file or promote a record whose tested copy is missing, saying to rerun the tests", () =>
    Effect.gen(function*() {
      const { approvals, codePath, testPath } = yield* setup
      const missing = { code_sha256: "0".repeat(64), test_sha256: "1".repeat(64) }
      const refused = yield* Effect.flip(
        approvals.create({ skillName: "csv_sum", metadata, codePath, testPath, testReport: passing, tested: missing, taskId: null })
      )
      expect(refused._tag).toBe("PromotionRefused")
      expect(refused.message).toContain("is missing; rerun its tests")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("a record whose skill name is a path is damaged, and nothing is promoted from it", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setup
      const record = yield* create
      yield* approvals.resolve(record.id, true, "reviewed")
      const file = `${config.state_dir}/pending_approvals/skill_csv_sum_${record.id}.json`
      writeFileSync(file, readFileSync(file, "utf8").replace("\"skill_name\": \"csv_sum\"", "\"skill_name\": \"../../.bashrc_d/x\""))
      const refused = yield* Effect.flip(approvals.promote(record.id))
      expect(refused._tag).toBe("ApprovalCorrupt")
      expect(refused.message).toContain("expected a skill name ([a-z][a-z0-9_]*, at most 64 characters), got \"../../.bashrc_d/x\"")
      expect(existsSync(config.skills.allowed_dir)).toBe(false)
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("names unknown and damaged records", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setup
      const missing = yield* Effect.flip(approvals.get("nope-nope"))
      expect(missing._tag).toBe("ApprovalNotFound")
      expect(missing.message).toContain("luallm-agent approvals list")
      yield* create
      writeFileSync(`${config.state_dir}/pending_approvals/skill_x_broken.json`, "{")
      const corrupt = yield* Effect.flip(approvals.listPending)
      expect(corrupt._tag).toBe("ApprovalCorrupt")
      expect(corrupt.message).toContain("skill_x_broken.json")
    }).pipe(Effect.provide(TestPlatform)))
})
