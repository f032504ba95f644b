#!/usr/bin/env node
"use strict"
// The bundle is built by `npm ci` (the package's prepare script) or `npm run build`.
const path = require("node:path")
const fs = require("node:fs")
const bundle = path.join(__dirname, "..", "dist", "cli.cjs")
if (!fs.existsSync(bundle)) {
  process.stderr.write(`luallm-agent: ${bundle} is missing. Run \`npm ci\` or \`npm run build\` in ${path.dirname(__dirname)}.\n`)
  process.exit(1)
}
require(bundle)
