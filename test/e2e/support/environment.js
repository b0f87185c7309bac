// The e2e project's jest environment: Node's, plus a count of failed tests and hooks in the test file's global
// (`__e2eFailures`). An assertion failure shows in expect.getState(); a test that ran past its timeout does not, and
// that is the failure whose apps' logs matter most (stopApps prints them when this count is not 0).
const { TestEnvironment } = require('jest-environment-node');

class E2EEnvironment extends TestEnvironment {
  async handleTestEvent(event) {
    if (event.name === 'test_fn_failure' || event.name === 'hook_failure') this.global.__e2eFailures = (this.global.__e2eFailures ?? 0) + 1;
  }
}

module.exports = E2EEnvironment;
