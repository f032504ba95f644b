/**
 * The exec argv parser on its own: every way GNU tools let an option be spelled (abbreviated,
 * joined, its value in the next word, after the operands, after `--`), each either refused
 * with its reason or turned into the canonical argv the command receives.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck } from "effect"
import { type AllowedCommand, commandSpecs, findRefused, parseCommand, type Word } from "../../src/layers/sandbox/execPolicy.ts"

/** The canonical argv, with each file word shown as `<path>` (or `prefix<path>`). */
const render = (word: Word): string => (word._tag === "Literal" ? word.text : `${word.prefix}<${word.path}>`)

const argv = (command: string, args: ReadonlyArray<string>): ReadonlyArray<string> =>
  Either.match(parseCommand(command, args), {
    onLeft: (reason) => {
      throw new Error(`expected ${command} ${args.join(" ")} to be allowed, refused: ${reason}`)
    },
    onRight: (parsed) => parsed.words.map(render)
  })

const refusal = (command: string, args: ReadonlyArray<string>): string =>
  Either.match(parseCommand(command, args), {
    onLeft: (reason) => reason,
    onRight: (parsed) => {
      throw new Error(`expected ${command} ${args.join(" ")} to be refused, got ${parsed.words.map(render).join(" ")}`)
    }
  })

const recursive = (command: string, args: ReadonlyArray<string>) => Either.getOrThrow(parseCommand(command, args)).recursive

interface Refused {
  readonly args: ReadonlyArray<string>
  readonly reason: string
}

const each = (command: AllowedCommand, cases: ReadonlyArray<Refused>) =>
  it.each(cases.map((c) => ({ ...c, spelled: c.args.join(" ") })))(`${command} $spelled is refused`, ({ args, reason }) => {
    expect(refusal(command, args)).toBe(reason)
  })

describe("commands", () => {
  it.each(["sh", "bash", "rm", "/bin/ls", "./ls", "LS", "ls ", "xargs", "env", ""])("refuses %j", (command) => {
    expect(refusal(command, [])).toBe("only ls, wc, head, tail, grep, find, cat, sort, uniq may be run (as argv, never through a shell)")
  })
})

describe("sort: -o/--output writes files, however it is spelled", () => {
  const output = "sort's -o writes files: it names the file sort writes its output to"
  const outputLong = "sort's --output writes files: it names the file sort writes its output to"
  each("sort", [
    { args: ["-o", "/tmp/x", "/d/in"], reason: output },
    { args: ["-o/tmp/x", "/d/in"], reason: `${output} (in -o/tmp/x)` },
    { args: ["-no", "/tmp/x", "/d/in"], reason: `${output} (in -no)` },
    { args: ["-no/tmp/x"], reason: `${output} (in -no/tmp/x)` },
    { args: ["-rno", "x"], reason: `${output} (in -rno)` },
    { args: ["/d/in", "-o", "/tmp/x"], reason: output },
    { args: ["-k", "1", "-o", "x"], reason: output },
    { args: ["--output", "/tmp/x"], reason: outputLong },
    { args: ["--output=/tmp/x"], reason: outputLong },
    { args: ["--outp=/tmp/x"], reason: `--outp abbreviates --output, and sort's --output writes files: it names the file sort writes its output to` },
    { args: ["--o", "/tmp/x"], reason: `--o abbreviates --output, and sort's --output writes files: it names the file sort writes its output to` },
    { args: ["/d/in", "--outp", "x"], reason: `--outp abbreviates --output, and sort's --output writes files: it names the file sort writes its output to` },
    { args: ["-T", "/tmp"], reason: "sort's -T writes files: temporary files go to the host's own directory for the run" },
    { args: ["--temporary-directory=/x"], reason: "sort's --temporary-directory writes files: temporary files go to the host's own directory for the run" },
    { args: ["--compress-program=sh"], reason: "sort's --compress-program runs another program" },
    { args: ["--compress-prog", "sh"], reason: "--compress-prog abbreviates --compress-program, and sort's --compress-program runs another program" },
    { args: ["--files0-from=/etc/list"], reason: "sort's --files0-from reads a list of file names from a file, past the path checks" },
    { args: ["--random-source=/etc/shadow"], reason: "sort's --random-source reads a file of its own choosing" },
    { args: ["-S", "100%", "/d/in"], reason: "sort's -S sets how much memory sort takes, which the host leaves at its default" },
    { args: ["--parallel=64", "/d/in"], reason: "sort's --parallel sets how many threads sort starts, which the host leaves at its default" },
    { args: ["--numeric-sort=1"], reason: "sort's --numeric-sort takes no value" },
    { args: ["--num"], reason: "--num is an abbreviation (of --numeric-sort); write long options in full" },
    { args: ["--k", "1"], reason: "--k is an abbreviation (of --key); write long options in full" },
    { args: ["-k"], reason: "sort's -k needs a value (the next argument)" },
    { args: ["--key"], reason: "sort's --key needs a value (write --key=VALUE)" },
    { args: ["--sort=exec"], reason: "sort's --sort must be one of general-numeric, human-numeric, month, numeric, random, version, not \"exec\"" }
  ])

  it("reads allowed options in every spelling and passes them in their long form before --", () => {
    expect(argv("sort", ["-n", "/d/in"])).toEqual(["--numeric-sort", "--", "</d/in>"])
    expect(argv("sort", ["-nr", "/d/in"])).toEqual(["--numeric-sort", "--reverse", "--", "</d/in>"])
    for (const spelled of [["-k", "2,2"], ["-k2,2"], ["--key=2,2"], ["--key", "2,2"]]) {
      expect(argv("sort", [...spelled, "/d/in"])).toEqual(["--key=2,2", "--", "</d/in>"])
    }
    expect(argv("sort", ["-nk2", "/d/in"])).toEqual(["--numeric-sort", "--key=2", "--", "</d/in>"])
    expect(argv("sort", ["-t", "-o", "/d/in"])).toEqual(["--field-separator=-o", "--", "</d/in>"])
  })

  it("reads an option after an operand as GNU does, and a word after -- as an operand", () => {
    expect(argv("sort", ["/d/in", "-r"])).toEqual(["--reverse", "--", "</d/in>"])
    expect(argv("sort", ["--", "-o", "/d/in"])).toEqual(["--", "<-o>", "</d/in>"])
  })
})

describe("head and tail", () => {
  it("read a count in every spelling, and the obsolescent -5 as the first argument", () => {
    for (const spelled of [["-n", "5"], ["-n5"], ["--lines=5"], ["--lines", "5"], ["-5"]]) {
      expect(argv("head", [...spelled, "/d/f"])).toEqual(["--lines=5", "--", "</d/f>"])
      expect(argv("tail", [...spelled, "/d/f"])).toEqual(["--lines=5", "--", "</d/f>"])
    }
    expect(argv("head", ["-qn", "2", "/d/a", "/d/b"])).toEqual(["--quiet", "--lines=2", "--", "</d/a>", "</d/b>"])
  })

  it("tail -cf and -nf (GNU's obsolescent follow forms) become --bytes=f and --lines=f, never -f", () => {
    expect(argv("tail", ["-cf", "/d/f"])).toEqual(["--bytes=f", "--", "</d/f>"])
    expect(argv("tail", ["-nf", "/d/f"])).toEqual(["--lines=f", "--", "</d/f>"])
  })

  each("tail", [
    { args: ["-f", "/d/f"], reason: "tail's -f follows the file and never returns" },
    { args: ["-F", "/d/f"], reason: "tail's -F follows the file and never returns" },
    { args: ["-qf", "/d/f"], reason: "tail's -f follows the file and never returns (in -qf)" },
    { args: ["-5f", "/d/f"], reason: `-5 is not an option tail may be given (it allows ${"-c/--bytes VALUE, -n/--lines VALUE, -q/--quiet, --silent, -v/--verbose, -z/--zero-terminated"}) (in -5f)` },
    { args: ["/d/f", "-f"], reason: "tail's -f follows the file and never returns" },
    { args: ["--follow", "/d/f"], reason: "tail's --follow follows the file and never returns" },
    { args: ["--fol", "/d/f"], reason: "--fol abbreviates --follow, and tail's --follow follows the file and never returns" },
    { args: ["--follow=name", "/d/f"], reason: "tail's --follow follows the file and never returns" },
    { args: ["--pid=1", "/d/f"], reason: "tail's --pid waits for another process" },
    { args: ["--retry", "/d/f"], reason: "tail's --retry keeps trying to open the file" },
    { args: ["/d/f", "-5"], reason: "tail reads a bare count like -5 only as its first argument; write -n 5" }
  ])

  each("head", [
    { args: ["--li=5", "/d/f"], reason: "--li is an abbreviation (of --lines); write long options in full" },
    { args: ["-n"], reason: "head's -n needs a value (the next argument)" },
    { args: ["--verbose=yes"], reason: "head's --verbose takes no value" }
  ])
})

describe("cat and wc", () => {
  it("cat reads joined flags", () => {
    expect(argv("cat", ["-vET", "/d/f"])).toEqual(["--show-nonprinting", "--show-ends", "--show-tabs", "--", "</d/f>"])
    expect(argv("cat", ["-e", "/d/f", "-"])).toEqual(["-e", "--", "</d/f>", "<->"])
  })

  each("cat", [
    { args: ["--num", "/d/f"], reason: "--num is an abbreviation (of --number-nonblank or --number); write long options in full" },
    { args: ["-z"], reason: "-z is not an option cat may be given (it allows -A/--show-all, -b/--number-nonblank, -e, -E/--show-ends, -n/--number, -s/--squeeze-blank, -t, -T/--show-tabs, -u, -v/--show-nonprinting)" }
  ])

  it("wc reads its flags and --total's fixed words", () => {
    expect(argv("wc", ["-lw", "/d/f"])).toEqual(["--lines", "--words", "--", "</d/f>"])
    expect(argv("wc", ["--total", "only", "/d/f"])).toEqual(["--total=only", "--", "</d/f>"])
  })

  each("wc", [
    { args: ["--files0-from=/etc/list"], reason: "wc's --files0-from reads a list of file names from a file, past the path checks" },
    { args: ["--files0-from", "/etc/list"], reason: "wc's --files0-from reads a list of file names from a file, past the path checks" },
    { args: ["--files0", "/etc/list"], reason: "--files0 abbreviates --files0-from, and wc's --files0-from reads a list of file names from a file, past the path checks" },
    { args: ["--total=sometimes"], reason: "wc's --total must be one of auto, always, only, never, not \"sometimes\"" }
  ])
})

describe("uniq: a second operand is an output file", () => {
  each("uniq", [
    { args: ["/d/in", "/d/out"], reason: "uniq's second operand is an output file it would write; give it one input file" },
    { args: ["-f", "1", "/d/in", "/d/out"], reason: "uniq's second operand is an output file it would write; give it one input file" },
    { args: ["/d/in", "-c", "/d/out"], reason: "uniq's second operand is an output file it would write; give it one input file" },
    { args: ["--", "/d/in", "/d/out"], reason: "uniq's second operand is an output file it would write; give it one input file" }
  ])

  it("counts an option's value in the next word as the value, not an operand", () => {
    expect(argv("uniq", ["-f", "1", "/d/in"])).toEqual(["--skip-fields=1", "--", "</d/in>"])
    expect(argv("uniq", ["-s2", "-c", "/d/in"])).toEqual(["--skip-chars=2", "--count", "--", "</d/in>"])
    expect(argv("uniq", ["-D", "/d/in"])).toEqual(["-D", "--", "</d/in>"])
  })
})

describe("grep", () => {
  it("knows its first operand is the pattern, so a pattern with / is not a path", () => {
    expect(argv("grep", ["a/b", "/d/f"])).toEqual(["--devices=skip", "--", "a/b", "</d/f>"])
    expect(argv("grep", ["-c", "/usr/bin", "/d/f"])).toEqual(["--devices=skip", "--count", "--", "/usr/bin", "</d/f>"])
    expect(argv("grep", ["--", "-v", "/d/f"])).toEqual(["--devices=skip", "--", "-v", "</d/f>"])
  })

  it("takes the pattern from -e or -f, wherever they stand, and then reads every operand as a file", () => {
    expect(argv("grep", ["-e", "/a/b/", "/d/f"])).toEqual(["--devices=skip", "--regexp=/a/b/", "--", "</d/f>"])
    expect(argv("grep", ["/d/f", "-e", "x"])).toEqual(["--devices=skip", "--regexp=x", "--", "</d/f>"])
    expect(argv("grep", ["-f", "/d/patterns", "/d/f"])).toEqual(["--devices=skip", "--file=</d/patterns>", "--", "</d/f>"])
    expect(argv("grep", ["-f/d/patterns", "/d/f"])).toEqual(["--devices=skip", "--file=</d/patterns>", "--", "</d/f>"])
    expect(argv("grep", ["-ifoo", "/d/f"])).toEqual(["--devices=skip", "--ignore-case", "--file=<oo>", "--", "</d/f>"])
    expect(argv("grep", ["--exclude-from", "/d/x", "p"])).toEqual(["--devices=skip", "--exclude-from=</d/x>", "--", "p"])
  })

  it("reads context counts in every spelling", () => {
    for (const spelled of [["-A", "2"], ["-A2"], ["--after-context=2"], ["--after-context", "2"]]) {
      expect(argv("grep", [...spelled, "p", "/d/f"])).toEqual(["--devices=skip", "--after-context=2", "--", "p", "</d/f>"])
    }
  })

  it("reports recursion from -r however it is spelled, and only then", () => {
    expect(recursive("grep", ["-r", "p", "/d"])).toBe(true)
    expect(recursive("grep", ["-nri", "p", "/d"])).toBe(true)
    expect(recursive("grep", ["p", "/d", "--recursive"])).toBe(true)
    expect(recursive("grep", ["p", "/d"])).toBe(false)
    expect(recursive("grep", ["--", "p", "-r"])).toBe(false)
  })

  const dereference = "follows symlinks, which can lead outside the checked paths; use -r, which does not follow them"
  const directories = "chooses how directories are read (recurse would skip the recursion checks); use -r to search below a directory"
  const devices = "chooses how devices and FIFOs are read; the host always skips them so a search never blocks"
  each("grep", [
    { args: ["-R", "p", "/d"], reason: `grep's -R ${dereference}` },
    { args: ["-rR", "p", "/d"], reason: `grep's -R ${dereference} (in -rR)` },
    { args: ["--dereference-recursive", "p", "/d"], reason: `grep's --dereference-recursive ${dereference}` },
    { args: ["--dereference", "p", "/d"], reason: `--dereference abbreviates --dereference-recursive, and grep's --dereference-recursive ${dereference}` },
    { args: ["-d", "recurse", "p", "/d"], reason: `grep's -d ${directories}` },
    { args: ["--directories=recurse", "p", "/d"], reason: `grep's --directories ${directories}` },
    { args: ["-D", "read", "p", "/d"], reason: `grep's -D ${devices}` },
    { args: ["--devices=read", "p", "/d"], reason: `grep's --devices ${devices}` },
    { args: ["--rec", "p", "/d"], reason: "--rec is an abbreviation (of --recursive); write long options in full" },
    { args: ["-e"], reason: "grep's -e needs a value (the next argument)" },
    { args: ["--binary-files=exec", "p"], reason: "grep's --binary-files must be one of binary, text, without-match, not \"exec\"" }
  ])

  it("refuses grep's -NUM context form, which its table does not hold", () => {
    expect(refusal("grep", ["-5", "p", "/d/f"])).toMatch(/^-5 is not an option grep may be given \(it allows -E\/--extended-regexp, /)
  })
})

describe("ls", () => {
  it("reads joined flags and fixed words", () => {
    expect(argv("ls", ["-la", "/d"])).toEqual(["-l", "--all", "--", "</d>"])
    expect(argv("ls", ["--sort=size", "-1", "/d"])).toEqual(["--sort=size", "-1", "--", "</d>"])
    expect(argv("ls", ["-w", "80", "/d"])).toEqual(["--width=80", "--", "</d>"])
    expect(recursive("ls", ["-lR", "/d"])).toBe(true)
    expect(recursive("ls", ["-l", "/d"])).toBe(false)
  })

  each("ls", [
    { args: ["-L", "/d"], reason: "ls's -L follows symlinks, which can lead outside the checked paths" },
    { args: ["-lL", "/d"], reason: "ls's -L follows symlinks, which can lead outside the checked paths (in -lL)" },
    { args: ["--dereference", "/d"], reason: "ls's --dereference follows symlinks, which can lead outside the checked paths" },
    { args: ["--deref", "/d"], reason: "--deref abbreviates --dereference, and ls's --dereference follows symlinks, which can lead outside the checked paths" },
    { args: ["-H", "/d"], reason: "ls's -H follows symlinks, which can lead outside the checked paths" },
    { args: ["--rec", "/d"], reason: "--rec is an abbreviation (of --recursive); write long options in full" },
    { args: ["--sort=exec", "/d"], reason: "ls's --sort must be one of none, size, time, version, extension, width, not \"exec\"" }
  ])
})

describe("find", () => {
  it("marks starting points and file arguments of tests as paths, and everything else as text", () => {
    expect(argv("find", ["/d", "-name", "*.txt", "-type", "f"])).toEqual(["</d>", "-name", "*.txt", "-type", "f"])
    expect(argv("find", ["-P", "/d", "/e", "-newer", "/d/ref", "-print0"])).toEqual(["</d>", "</e>", "-newer", "</d/ref>", "-print0"])
    expect(argv("find", ["/d", "-newermt", "2024-01-01"])).toEqual(["</d>", "-newermt", "2024-01-01"])
    expect(argv("find", ["/d", "-neweram", "/d/ref"])).toEqual(["</d>", "-neweram", "</d/ref>"])
    expect(argv("find", ["/d", "-samefile", "/d/x"])).toEqual(["</d>", "-samefile", "</d/x>"])
    expect(argv("find", ["/d", "-name", "-exec"])).toEqual(["</d>", "-name", "-exec"])
    expect(argv("find", ["/d", "(", "-name", "a", "-o", "-name", "b", ")", "-printf", "%p\\n"])).toEqual(["</d>", "(", "-name", "a", "-o", "-name", "b", ")", "-printf", "%p\\n"])
  })

  it("walks below its starting points unless every -maxdepth is 0", () => {
    expect(recursive("find", ["/d"])).toBe(true)
    expect(recursive("find", ["/d", "-maxdepth", "1"])).toBe(true)
    expect(recursive("find", ["/d", "-maxdepth", "0"])).toBe(false)
    expect(recursive("find", ["/d", "-maxdepth", "0", "-maxdepth", "3"])).toBe(true)
  })

  each("find", [
    { args: ["/d", "-exec", "sh", "-c", "id", ";"], reason: "find's -exec runs programs" },
    { args: ["/d", "-execdir", "sh", ";"], reason: "find's -execdir runs programs" },
    { args: ["/d", "-ok", "rm", "{}", ";"], reason: "find's -ok runs programs" },
    { args: ["/d", "-okdir", "rm", "{}", ";"], reason: "find's -okdir runs programs" },
    { args: ["/d", "-delete"], reason: "find's -delete deletes files" },
    { args: ["/d", "-fprint", "/tmp/x"], reason: "find's -fprint writes files" },
    { args: ["/d", "-fprint0", "/tmp/x"], reason: "find's -fprint0 writes files" },
    { args: ["/d", "-fprintf", "/tmp/x", "%p"], reason: "find's -fprintf writes files" },
    { args: ["/d", "-fls", "/tmp/x"], reason: "find's -fls writes files" },
    { args: ["-L", "/d"], reason: "find's -L follows symlinks, which can lead outside the checked paths" },
    { args: ["-H", "/d"], reason: "find's -H follows symlinks, which can lead outside the checked paths" },
    { args: ["-P", "-L", "/d"], reason: "find's -L follows symlinks, which can lead outside the checked paths" },
    { args: ["/d", "-follow"], reason: "find's -follow follows symlinks, which can lead outside the checked paths" },
    { args: ["/d", "-xtype", "f"], reason: "find's -xtype looks through symlinks, which can reach outside the checked paths" },
    { args: ["-files0-from", "/etc/list"], reason: "find's -files0-from reads a list of file names from a file, past the path checks" },
    { args: ["-D", "exec", "/d"], reason: "find's -D is a debugging option" },
    { args: ["-O3", "/d"], reason: "find's -O3 is a debugging option" },
    { args: ["/d", "-name"], reason: "find's -name needs a value (the next argument)" },
    { args: ["/d", "-print", "/etc"], reason: "find reads \"/etc\" as part of its expression, where it means nothing: starting points come before the expression" }
  ])

  it("refuses an expression word it does not know, naming the ones it allows", () => {
    expect(refusal("find", ["/d", "-execute"])).toMatch(/^find's -execute is not a test, action or operator find may be given \(it allows \( \) ! , -not /)
  })
})

describe("whatever the argv, the command receives only options from its table", () => {
  const pool = [
    "-o", "-no", "-nof", "--output", "--output=x", "--outp", "-f", "-F", "-L", "-R", "-r", "-e", "-5", "-n", "-n5", "5",
    "--follow", "--files0-from=x", "--dereference", "-d", "recurse", "--", "-", "/d/f", "rel", "-la", "-T", "-k", "2",
    "--compress-program", "sh", "-lR", "--lines", "--lin", "-c", "-cf", "-exec", "-delete", "-fprint", "-name", "x"
  ]
  const commands = ["ls", "wc", "head", "tail", "grep", "cat", "sort", "uniq"] as const

  it.prop(
    "each option word before -- is a table option in its canonical form",
    [FastCheck.constantFrom(...commands), FastCheck.array(FastCheck.constantFrom(...pool), { maxLength: 8 })],
    ([command, args]) => {
      const parsed = parseCommand(command, args)
      if (Either.isLeft(parsed)) return
      const spec = commandSpecs[command]
      const words = parsed.right.words.map(render)
      const optionWords = words.slice(0, words.indexOf("--")).filter((word) => !(spec.fixed ?? []).includes(word))
      for (let i = 0; i < optionWords.length; i++) {
        const word = optionWords[i] ?? ""
        const long = /^--([^=]+)(?:=|$)/.exec(word)?.[1]
        const option = long !== undefined ? spec.options.find((o) => o.long === long) : spec.options.find((o) => o.long === undefined && `-${o.short}` === word)
        expect(option, `${command} ${args.join(" ")} → ${words.join(" ")}: ${word}`).toBeDefined()
        if (long === undefined && option?.value !== undefined) i++ // a short-only option's value is the next word
      }
      expect(words.indexOf("--")).toBeGreaterThanOrEqual(0)
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it("no refused find word ever reaches find", () => {
    for (const word of Object.keys(findRefused)) {
      expect(Either.isLeft(parseCommand("find", ["/d", word, "x", ";"]))).toBe(true)
    }
  })
})
