// One jest config, three projects: `unit` (specs beside the code), `integration` (real Postgres/Redis),
// `e2e` (API and workers as real processes). `npm test` runs them all.
const swc = ['@swc/jest', {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
}];
const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc },
  moduleFileExtensions: ['ts', 'js', 'json', 'node'],
  moduleNameMapper: {
    '^@lmfleet/native$': '<rootDir>/libs/native/src/index.ts',
    '^@lmfleet/engine$': '<rootDir>/libs/engine/src/index.ts',
    '^@lmfleet/engine/(.*)$': '<rootDir>/libs/engine/src/$1',
    '^@lmfleet/platform$': '<rootDir>/libs/platform/src/index.ts',
    '^@lmfleet/platform/(.*)$': '<rootDir>/libs/platform/src/$1',
  },
  modulePathIgnorePatterns: ['<rootDir>/dist/', '<rootDir>/.gl/'],
};
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'], testEnvironment: '<rootDir>/test/e2e/support/environment.js' },
  ],
};
