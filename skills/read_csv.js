/* @skill {
  "name": "read_csv",
  "version": "1.0.0",
  "description": "Reads a CSV file (RFC 4180: quoted fields, \"\" for a quote, line breaks inside quotes, CRLF or LF, empty fields) into rows: objects keyed by the header, or arrays of strings without one. Values stay strings. A row whose field count differs from the first row's is an error naming each such line, never padded or cut, so no value is silently shifted to the wrong column. Blank lines and a UTF-8 byte-order mark are skipped. It reads through read_file, so the same allowed_paths bound applies. The rows may be as large as the skill's memory (limits.skill_memory_mb) and pass whole to the next skill; a model that is shown them gets an excerpt, so let a skill reduce large rows to what the answer needs. parse(text, {has_header}) does the same for CSV text.",
  "dependencies": ["read_file"],
  "paths": [],
  "urls": [],
  "public_functions": ["run", "parse"],
  "args": {
    "path": "string: the CSV file to read; it must lie inside allowed_paths",
    "has_header": "boolean, default true: true if the first row names the columns (rows come back as objects), false for rows as arrays of strings"
  }
} */
import { run as readFile } from "read_file"

export class CsvError extends Error {
  constructor(message) {
    super(message)
    this.name = "CsvError"
  }
}

const QUOTE = 34
const COMMA = 44
const LF = 10
const CR = 13
/** An unquoted field: everything up to the next comma or line break (a quote in it is text). */
const UNQUOTED = /[^,\r\n]*/y

/** 1-based line and column of `offset`; CRLF, LF and a lone CR each end a line. */
export function positionOf(text, offset) {
  const before = text.slice(0, offset)
  const breaks = before.match(/\r\n|\r|\n/g)
  const lineStart = Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r")) + 1
  return { line: (breaks === null ? 0 : breaks.length) + 1, column: offset - lineStart + 1 }
}

/** Reads one quoted field whose opening quote is at `open`; returns its value and the index after it. */
function quotedField(text, open) {
  let value = ""
  let from = open + 1
  for (;;) {
    const quote = text.indexOf("\"", from)
    if (quote === -1) {
      throw new CsvError(`line ${positionOf(text, open).line}: the quoted field that starts here never ends (a closing " is missing)`)
    }
    value += text.slice(from, quote)
    if (text.charCodeAt(quote + 1) !== QUOTE) return { value, end: quote + 1 }
    value += "\""
    from = quote + 2
  }
}

/**
 * Splits CSV text into records, each with the offset where it starts. A quote in the middle
 * of an unquoted field is kept as text (`12" ruler`); anything but a comma or a line break
 * after a closing quote is an error.
 */
export function parseRecords(text) {
  const records = []
  const length = text.length
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  while (i < length) {
    const first = text.charCodeAt(i)
    if (first === LF || first === CR) {
      i += first === CR && text.charCodeAt(i + 1) === LF ? 2 : 1
      continue
    }
    const start = i
    const fields = []
    for (;;) {
      if (text.charCodeAt(i) === QUOTE) {
        const field = quotedField(text, i)
        fields.push(field.value)
        i = field.end
        const next = text.charCodeAt(i)
        if (i < length && next !== COMMA && next !== LF && next !== CR) {
          const { column, line } = positionOf(text, i)
          throw new CsvError(`line ${line}, column ${column}: unexpected ${JSON.stringify(text[i])} after the closing quote of a field (a quote inside a quoted field is written "")`)
        }
      } else {
        UNQUOTED.lastIndex = i
        const field = UNQUOTED.exec(text)[0]
        fields.push(field)
        i += field.length
      }
      if (text.charCodeAt(i) !== COMMA) break
      i++
    }
    if (i < length) i += text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF ? 2 : 1
    records.push({ start, fields })
  }
  return records
}

const MAX_REPORTED = 5

function raggedError(text, records, ragged, hasHeader) {
  const lineOf = (record) => positionOf(text, record.start).line
  const listed = ragged.slice(0, MAX_REPORTED).map((r) => `line ${lineOf(r)} has ${r.fields.length}`).join(", ")
  const more = ragged.length > MAX_REPORTED ? ` (and ${ragged.length - MAX_REPORTED} more rows)` : ""
  const width = records[0].fields.length
  const reference = hasHeader ? "the header" : "the first row"
  return new CsvError(
    `ragged rows: ${listed}${more}; every row must have ${width} field${width === 1 ? "" : "s"} like ${reference} on line ${lineOf(records[0])}. Quote fields that contain commas or line breaks, or fix those rows.`
  )
}

function checkHeader(header, line) {
  const seen = new Map()
  header.forEach((name, index) => {
    if (seen.has(name)) {
      throw new CsvError(`the header on line ${line} names the column ${JSON.stringify(name)} twice (columns ${seen.get(name) + 1} and ${index + 1}); give the columns distinct names, or read the file with "has_header": false`)
    }
    seen.set(name, index)
  })
}

/** An object keyed by the header; defineProperty keeps a column named "__proto__" as data. */
function toObject(header, fields) {
  const row = {}
  header.forEach((name, index) => {
    Object.defineProperty(row, name, { value: fields[index], enumerable: true, writable: true, configurable: true })
  })
  return row
}

function hasHeaderOption(options) {
  const value = options === undefined || options === null ? undefined : options.has_header
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`"has_header" must be true or false, got ${JSON.stringify(value)}`)
  }
  return value !== false
}

/**
 * CSV text → rows: with `has_header` (the default) objects keyed by the first row, else
 * arrays of strings. Throws CsvError with line numbers for malformed or ragged input.
 */
export function parse(text, options) {
  if (typeof text !== "string") throw new TypeError(`the CSV text must be a string, got ${text === null ? "null" : typeof text}`)
  const hasHeader = hasHeaderOption(options)
  const records = parseRecords(text)
  if (records.length === 0) return []
  const width = records[0].fields.length
  const ragged = records.filter((record) => record.fields.length !== width)
  if (ragged.length > 0) throw raggedError(text, records, ragged, hasHeader)
  if (!hasHeader) return records.map((record) => record.fields)
  const header = records[0].fields
  checkHeader(header, positionOf(text, records[0].start).line)
  return records.slice(1).map((record) => toObject(header, record.fields))
}

/** `read` is read_file's run, or in tests anything that maps {path} to text. */
export function readCsvWith(read, args) {
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new TypeError(`expected arguments like {"path": "~/data/table.csv", "has_header": true}, got ${JSON.stringify(args)}`)
  }
  const hasHeader = hasHeaderOption(args)
  const text = read({ path: args.path })
  try {
    return parse(text, { has_header: hasHeader })
  } catch (error) {
    if (error instanceof CsvError) throw new CsvError(`${args.path}: ${error.message}`)
    throw error
  }
}

export function run(args) {
  return readCsvWith(readFile, args)
}
