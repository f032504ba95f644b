import { describe, expect, it } from "@effect/vitest"
import { summarize, type TestResult, testsAtFault } from "../../src/core/testHarness.ts"

const result = (name: string, status: TestResult["status"], error: string | null = null): TestResult => ({ name, status, error, duration_ms: 1 })

describe("testsAtFault: whether a draft's tests, not its code, are what is wrong", () => {
  it("a file that registers no tests (the skill's code given as its tests)", () => {
    expect(testsAtFault("csv_sum", summarize([]))).toBe(
      "csv_sum.test.js registers no tests: it must call test(name, fn) (a file holding the skill's code instead of its tests registers none)."
    )
  })

  it("a test that breaks inside the test file on an error that is not an assertion", () => {
    const report = summarize([
      result("sums", "pass"),
      result("uses a helper", "fail", "ReferenceError: 'helper' is not defined (at /home/ada/drafts/csv_sum.test.js:3)"),
      result("calls wrong", "fail", "TypeError: not a function (at csv_sum.test.js:4)")
    ])
    expect(testsAtFault("csv_sum", report)).toBe(
      "The test \"uses a helper\" fails inside csv_sum.test.js itself, not in an assertion: ReferenceError: 'helper' is not defined (at /home/ada/drafts/csv_sum.test.js:3) (and 1 more like it). The tests are wrong, not only the code."
    )
  })

  it("not for failed assertions, errors the skill's code raised, or another skill's test file", () => {
    const report = summarize([
      result("sums", "fail", "AssertionError: expected 2 to equal 3 (at /home/ada/drafts/csv_sum.test.js:2)"),
      result("throws", "fail", "TypeError: cannot read 'x' of undefined (at /home/ada/drafts/csv_sum.js:7)"),
      result("other", "fail", "ReferenceError: y is not defined (at /home/ada/drafts/other_csv_sum.test.js:1)"),
      result("no place", "fail", "threw \"boom\""),
      result("skipped", "skip", "needs exec (at csv_sum.test.js:9)")
    ])
    expect(testsAtFault("csv_sum", report)).toBeUndefined()
  })
})
