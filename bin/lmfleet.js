#!/usr/bin/env node
// Runs the compiled CLI (dist/apps/cli/src/main.js). Build it first with `npm run build`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'apps', 'cli', 'src', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write('lmfleet: the CLI is not built: run `npm run build` first (expected ' + main + ')\n');
  process.exit(1);
}
let interruptHandler;
process.on('SIGINT', () => {
  if (interruptHandler) {
    const h = interruptHandler;
    interruptHandler = undefined;
    h();
  } else {
    process.exit(130);
  }
});
require(main)
  .run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    onInterrupt: (h) => (interruptHandler = h),
  })
  .then((code) => {
    process.exitCode = code;
  });
