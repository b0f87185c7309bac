// A few-line require hook so tests can run the apps' TypeScript as real processes without a build:
// `node --require ./test/e2e/register.js apps/api/src/main.ts`. Compiles with @swc/core (same options as
// jest.config.js) and resolves the tsconfig path aliases.
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { transformSync } = require('@swc/core');

const root = path.resolve(__dirname, '../..');
const aliases = {
  '@lmfleet/native': 'libs/native/src/index.ts',
  '@lmfleet/engine': 'libs/engine/src/index.ts',
  '@lmfleet/platform': 'libs/platform/src/index.ts',
};
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (aliases[request]) request = path.join(root, aliases[request]);
  else {
    const m = /^(@lmfleet\/(?:engine|platform))\/(.+)$/.exec(request);
    if (m) request = path.join(root, path.dirname(aliases[m[1]]), m[2]);
  }
  return origResolve.call(this, request, parent, ...rest);
};
const options = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};
require.extensions['.ts'] = function (mod, filename) {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), { ...options, filename });
  mod._compile(code, filename);
};
