import { describe, expect, it } from "@effect/vitest"
import { expandHome, globBase, hasParentSegment, matchesAnyGlob, matchesGlob, normalizePath } from "../../src/core/pathGlob.ts"

describe("normalizePath", () => {
  it("expands ~ and resolves relative paths against the working directory", () => {
    expect(normalizePath("~/data/x.csv", "/work", "/home/ann")).toBe("/home/ann/data/x.csv")
    expect(normalizePath("data/x.csv", "/work", "/home/ann")).toBe("/work/data/x.csv")
    expect(expandHome("~", "/home/ann")).toBe("/home/ann")
    expect(expandHome("~ann/x", "/home/ann")).toBe("~ann/x")
  })

  it("removes . and .. lexically without climbing above /", () => {
    expect(normalizePath("/a/b/../c/./d//e", "/", "/h")).toBe("/a/c/d/e")
    expect(normalizePath("/../../etc/passwd", "/", "/h")).toBe("/etc/passwd")
    expect(normalizePath("~/data/../../../etc/shadow", "/", "/home/ann")).toBe("/etc/shadow")
  })

  it("detects a parent segment anywhere in a path", () => {
    expect(hasParentSegment("a/../b")).toBe(true)
    expect(hasParentSegment("a/..b/c")).toBe(false)
  })
})

describe("matchesGlob", () => {
  it("dir/* matches the entries of dir, not dir itself nor deeper files", () => {
    expect(matchesGlob("/data/a.csv", "/data/*")).toBe(true)
    expect(matchesGlob("/data", "/data/*")).toBe(false)
    expect(matchesGlob("/data/sub/a.csv", "/data/*")).toBe(false)
  })

  it("dir/** matches dir itself and everything below it", () => {
    expect(matchesGlob("/data", "/data/**")).toBe(true)
    expect(matchesGlob("/data/a/b/c.txt", "/data/**")).toBe(true)
    expect(matchesGlob("/database", "/data/**")).toBe(false)
    expect(matchesGlob("/data2/x", "/data/**")).toBe(false)
  })

  it("a plain path matches only itself", () => {
    expect(matchesGlob("/data/a.csv", "/data/a.csv")).toBe(true)
    expect(matchesGlob("/data/a.csvx", "/data/a.csv")).toBe(false)
  })

  it("supports wildcards inside a segment and ** in the middle", () => {
    expect(matchesGlob("/data/x/y/z.csv", "/data/**/*.csv")).toBe(true)
    expect(matchesGlob("/data/z.csv", "/data/**/*.csv")).toBe(true)
    expect(matchesGlob("/data/z.txt", "/data/**/*.csv")).toBe(false)
    expect(matchesGlob("/data/a1.csv", "/data/a?.csv")).toBe(true)
    expect(matchesGlob("/data/a12.csv", "/data/a?.csv")).toBe(false)
  })

  it("treats regular-expression characters in globs literally", () => {
    expect(matchesGlob("/data/a+b(1).csv", "/data/a+b(1).csv")).toBe(true)
    expect(matchesGlob("/data/aab1.csv", "/data/a+b(1).csv")).toBe(false)
  })

  it("matches against any of several globs and none of an empty list", () => {
    expect(matchesAnyGlob("/tmp/x", ["/data/**", "/tmp/**"])).toBe(true)
    expect(matchesAnyGlob("/tmp/x", [])).toBe(false)
  })

  it("finds the wildcard-free base of a glob", () => {
    expect(globBase("/data/**/*.csv")).toBe("/data")
    expect(globBase("/data/file.txt")).toBe("/data/file.txt")
    expect(globBase("/*")).toBe("/")
  })
})
