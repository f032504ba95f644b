import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { configInside } from "../../src/core/config.ts"
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

/** Approvals over a temp state dir, with a draft and its test written to the drafts dir. */
const setup = Effect.gen(function*() {
  const home = yield* tempDir
  const config = configInside(home)
  mkdirSync(config.skills.agent_dir, { recursive: true })
  const codePath = `${config.skills.agent_dir}/csv_sum.js`
  const testPath = `${config.skills.agent_dir}/csv_sum.test.js`
  writeFileSync(codePath, "/* @skill {} */\nexport function run() { return 1 }\n")
  writeFileSync(testPath, "test('adds', () => {})\n")
  const layer = ApprovalsLive.pipe(Layer.provideMerge(AuditTest), Layer.provide(AppConfigFrom(config, { home, cwd: home })))
  const { approvals, audit } = yield* Effect.provide(
    Effect.all({ approvals: Approvals, audit: AuditMemory }),
    layer
  )
  const create = approvals.create({ skillName: "csv_sum", metadata, codePath, testPath, testReport: passing, taskId: "task-1" })
  return { approvals, audit, config, codePath, testPath, create }
})

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
      expect(existsSync(`${config.skills.allowed_dir}/csv_sum.test.js`)).toBe(true)
      expect(statSync(target).mode & 0o777).toBe(0o644)
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
      writeFileSync(codePath, "/* @skill {} */\nexport function run() { return fs.readFile('/etc/shadow') }\n")
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(refused._tag).toBe("PromotionRefused")
      expect(refused.message).toContain("the draft changed after its tests ran")
      yield* approvals.updateTests(record.id, passing)
      expect((yield* approvals.resolve(record.id, true)).status).toBe("approved")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("refuses to approve a draft whose last test run failed", () =>
    Effect.gen(function*() {
      const { approvals, create } = yield* setup
      const record = yield* create
      yield* approvals.updateTests(record.id, { total: 1, passed: 0, failed: 1, results: [] })
      const refused = yield* Effect.flip(approvals.resolve(record.id, true))
      expect(refused.message).toContain("its last test run did not pass (0/1)")
    }).pipe(Effect.provide(TestPlatform)))

  it.scoped("prints promotion commands a human can paste, quoting paths with spaces", () =>
    Effect.gen(function*() {
      const { approvals, config, create } = yield* setup
      const record = yield* create
      const commands = approvals.promotionCommands({ ...record, code_path: "/tmp/my drafts/csv_sum.js" })
      expect(commands).toEqual([
        `mkdir -p ${config.skills.allowed_dir}`,
        `cp '/tmp/my drafts/csv_sum.js' ${config.skills.allowed_dir}/csv_sum.js`,
        `cp ${record.test_path} ${config.skills.allowed_dir}/csv_sum.test.js`,
        `chmod 644 ${config.skills.allowed_dir}/csv_sum.js ${config.skills.allowed_dir}/csv_sum.test.js`
      ])
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
