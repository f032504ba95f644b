/**
 * The in-sandbox test API for skills (SPEC part 8) and the shape of its results.
 *
 * `harnessSource` is evaluated in the sandbox before the skill and its test file. It defines
 * the globals `test(name, fn)` (alias `it`; `fn` may be async), `describe(name, fn)` and
 * `assert.equal / notEqual / deepEqual / ok / throws / rejects / match`, and evaluates to a
 * private hooks object the runner keeps (`names()`, `run(index)`) that test code cannot reach.
 * The harness keeps its own references to the built-ins it uses, so a test that replaces
 * `JSON.stringify` or `String` cannot forge its results.
 *
 * Convention: `<name>.test.js` gets the skill under test with `require("<name>")` (CommonJS)
 * or `import { run } from "<name>"` / `import skill from "<name>"` (ES module), whichever
 * form the skill itself is written in. `"./<name>.js"` is accepted as the same name.
 */
import { Schema } from "effect"

/** The file name the harness is evaluated under; its frames are skipped in failure locations. */
export const harnessFileName = "luallm:harness"

export const harnessSource = String.raw`(() => {
  "use strict";
  const S = String, stringify = JSON.stringify, isArray = Array.isArray, keysOf = Object.keys;
  const getProto = Object.getPrototypeOf, hasOwn = Object.prototype.hasOwnProperty;
  const RegExpClass = RegExp, ErrorClass = Error, PromiseClass = Promise;
  const tests = [];
  const prefixes = [];

  const show = (value) => {
    if (typeof value === "string") return stringify(value);
    if (typeof value === "function") return "[function " + (value.name || "anonymous") + "]";
    if (typeof value === "bigint") return S(value) + "n";
    if (value === undefined || typeof value === "number" || typeof value === "symbol") return S(value);
    try { const text = stringify(value); return text === undefined ? S(value) : text; } catch (e) { return S(value); }
  };
  class AssertionError extends ErrorClass {
    constructor(message) { super(message); this.name = "AssertionError"; }
  }
  const fail = (message, fallback) => { throw new AssertionError(message === undefined ? fallback : S(message)); };
  const same = (a, b) => a === b || (a !== a && b !== b);
  const deepSame = (a, b) => {
    if (same(a, b)) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (isArray(a) !== isArray(b) || getProto(a) !== getProto(b)) return false;
    const aKeys = keysOf(a), bKeys = keysOf(b);
    if (aKeys.length !== bKeys.length) return false;
    for (const key of aKeys) if (!hasOwn.call(b, key) || !deepSame(a[key], b[key])) return false;
    return true;
  };
  const messageOf = (error) => (error !== null && typeof error === "object" && "message" in error ? S(error.message) : S(error));
  const matchesExpected = (error, expected) => {
    if (expected === undefined) return true;
    if (expected instanceof RegExpClass) return expected.test(messageOf(error));
    if (typeof expected === "string") return messageOf(error).includes(expected);
    if (typeof expected === "function") return error instanceof expected;
    throw new TypeError("assert.throws: expected must be a RegExp, a string or an error class, got " + show(expected));
  };
  const describeExpected = (expected) =>
    typeof expected === "function" ? "an instance of " + (expected.name || "the given class") : "an error matching " + show(expected instanceof RegExpClass ? S(expected) : expected);

  const assert = {
    equal: (actual, expected, message) => { if (!same(actual, expected)) fail(message, "expected " + show(actual) + " to equal " + show(expected)); },
    notEqual: (actual, expected, message) => { if (same(actual, expected)) fail(message, "expected " + show(actual) + " not to equal " + show(expected)); },
    deepEqual: (actual, expected, message) => { if (!deepSame(actual, expected)) fail(message, "expected " + show(actual) + " to deeply equal " + show(expected)); },
    ok: (value, message) => { if (!value) fail(message, "expected a truthy value, got " + show(value)); },
    match: (text, pattern, message) => {
      if (typeof text !== "string") fail(message, "expected a string to match " + S(pattern) + ", got " + show(text));
      if (!(pattern instanceof RegExpClass)) throw new TypeError("assert.match: the pattern must be a RegExp, got " + show(pattern));
      if (!pattern.test(text)) fail(message, "expected " + show(text) + " to match " + S(pattern));
    },
    throws: (fn, expected, message) => {
      if (typeof fn !== "function") throw new TypeError("assert.throws: expected a function, got " + show(fn));
      let result;
      try { result = fn(); } catch (error) {
        if (!matchesExpected(error, expected)) fail(message, "expected " + describeExpected(expected) + ", but it threw " + show(messageOf(error)));
        return error;
      }
      if (result instanceof PromiseClass) fail(message, "the function returned a promise instead of throwing: use await assert.rejects(fn)");
      return fail(message, "expected the function to throw, but it returned " + show(result));
    },
    rejects: async (fnOrPromise, expected, message) => {
      try { await (typeof fnOrPromise === "function" ? fnOrPromise() : fnOrPromise); } catch (error) {
        if (!matchesExpected(error, expected)) fail(message, "expected " + describeExpected(expected) + ", but it rejected with " + show(messageOf(error)));
        return error;
      }
      return fail(message, "expected a rejection, but it resolved");
    }
  };

  const test = (name, fn) => {
    if (typeof name !== "string") throw new TypeError("test(name, fn): name must be a string, got " + show(name));
    if (typeof fn !== "function") throw new TypeError("test(" + stringify(name) + ", fn): fn must be a function, got " + show(fn));
    tests.push({ name: prefixes.concat([name]).join(" > "), fn });
  };
  const describe = (name, fn) => {
    if (typeof fn !== "function") throw new TypeError("describe(name, fn): fn must be a function, got " + show(fn));
    prefixes.push(S(name));
    try { fn(); } finally { prefixes.pop(); }
  };
  globalThis.test = test;
  globalThis.it = test;
  globalThis.describe = describe;
  globalThis.assert = assert;

  // The first stack frame outside the harness: where the failing assertion was called.
  const location = (error) => {
    const stack = error !== null && typeof error === "object" && typeof error.stack === "string" ? error.stack : "";
    for (const line of stack.split("\n")) {
      const match = /\(?([^\s()]+?:\d+)(?::\d+)?\)?\s*$/.exec(line);
      if (match !== null && !match[1].startsWith("${harnessFileName}")) return match[1];
    }
    return null;
  };
  const describeFailure = (error) => {
    const text = error !== null && typeof error === "object" && "name" in error && "message" in error
      ? S(error.name) + ": " + S(error.message)
      : "threw " + show(error);
    const where = location(error);
    return where === null ? text : text + " (at " + where + ")";
  };

  return {
    names: () => { const names = []; for (const t of tests) names.push(t.name); return stringify(names); },
    run: async (index) => {
      const entry = tests[index];
      try { await entry.fn(); return stringify({ status: "pass", error: null }); }
      catch (error) { return stringify({ status: "fail", error: describeFailure(error) }); }
    }
  };
})()`

/**
 * A test passes, fails, or is skipped: it needed a capability this run was not granted
 * (`exec` without `--allow-exec`), so it could neither pass nor fail. The harness in the sandbox
 * reports pass or fail; the host turns a run stopped for want of a grant into a skip.
 */
export const TestStatus = Schema.Literal("pass", "fail", "skip")
export type TestStatus = typeof TestStatus.Type

/** What the harness reports for one test, decoded when it crosses back from the sandbox. */
export const TestOutcome = Schema.Struct({ status: Schema.Literal("pass", "fail"), error: Schema.NullOr(Schema.String) })
export type TestOutcome = typeof TestOutcome.Type

/** The registered test names, in order. */
export const TestNames = Schema.Array(Schema.String)

export const TestResult = Schema.Struct({
  name: Schema.String,
  status: TestStatus,
  /** Why it failed, or why it was skipped. */
  error: Schema.NullOr(Schema.String),
  duration_ms: Schema.Number
})
export type TestResult = typeof TestResult.Type

export const TestReport = Schema.Struct({
  total: Schema.Number,
  passed: Schema.Number,
  failed: Schema.Number,
  /** Absent from reports written before skips existed (and from reports that had none). */
  skipped: Schema.optionalWith(Schema.Number, { exact: true }),
  results: Schema.Array(TestResult)
})
export type TestReport = typeof TestReport.Type

export const summarize = (results: ReadonlyArray<TestResult>): TestReport => {
  const count = (status: TestStatus) => results.filter((r) => r.status === status).length
  return { total: results.length, passed: count("pass"), failed: count("fail"), skipped: count("skip"), results }
}

/**
 * Whether a test run shows the code works: at least one test, and every test passed. A skipped
 * test proves nothing, so it counts against a draft or an approval like a failure would (a draft
 * never has one: it may not declare `exec` at all).
 */
export const allPassed = (report: Pick<TestReport, "total" | "passed">): boolean => report.total > 0 && report.passed === report.total

/** Where a failure's error was raised: the `(at FILE:LINE)` the harness appends. */
const raisedIn = (error: string): string | undefined => /\(at ([^()]+):\d+\)$/.exec(error)?.[1]

/**
 * Why a draft's tests themselves are the problem, judged from how they ran, or `undefined` when
 * the code should change to meet them: the file registers no tests (it holds code, or nothing
 * that calls `test`), or a failing test stopped inside the test file on an error that is not an
 * assertion (it calls something that does not exist, or in a way that cannot work).
 */
export const testsAtFault = (name: string, report: TestReport): string | undefined => {
  if (report.total === 0) {
    return `${name}.test.js registers no tests: it must call test(name, fn) (a file holding the skill's code instead of its tests registers none).`
  }
  const broken = report.results.filter((result) => {
    if (result.status !== "fail" || result.error === null || result.error.startsWith("AssertionError")) return false
    const file = raisedIn(result.error)
    return file !== undefined && (file === `${name}.test.js` || file.endsWith(`/${name}.test.js`))
  })
  const [first] = broken
  if (first === undefined) return undefined
  const more = broken.length > 1 ? ` (and ${broken.length - 1} more like it)` : ""
  return `The test "${first.name}" fails inside ${name}.test.js itself, not in an assertion: ${first.error ?? ""}${more}. The tests are wrong, not only the code.`
}
