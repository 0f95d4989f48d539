// Exits 0 when node_modules holds the openai version package.json pins (make system-deps).
const want = require("./package.json").dependencies.openai;
let have;
try {
  have = require("./node_modules/openai/package.json").version;
} catch {}
process.exit(have === want ? 0 : 1);
