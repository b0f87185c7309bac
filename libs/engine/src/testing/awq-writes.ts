// auto_awq hands its in-memory result (the canonical tensors as loaded, folds in) to writeAutoAwqDir: specs that check
// what it wrote against what it held record the writer's arguments (the writer itself runs unchanged). The module's
// exports are not configurable (no jest.spyOn), so a spec mocks it with this factory:
//   jest.mock('./autoawq', () => jest.requireActual('../testing/awq-writes').recordingAutoawq(jest.requireActual('./autoawq')));
// and reads lastAutoAwqWrite() (jest's module registry is per spec file, so is the record). No jest global here: the
// build (tsconfig.build.json) compiles testing/ without jest's types.
import type * as autoawq from '../quant/autoawq';

export type AutoAwqWriteArgs = Parameters<typeof autoawq.writeAutoAwqDir>;

const record: { args?: AutoAwqWriteArgs } = {};

/** `actual` (quant/autoawq as jest.requireActual gives it) with writeAutoAwqDir recording its arguments. */
export function recordingAutoawq(actual: typeof autoawq): typeof autoawq {
  return {
    ...actual,
    writeAutoAwqDir: (...args: AutoAwqWriteArgs) => {
      record.args = args;
      return actual.writeAutoAwqDir(...args);
    },
  };
}

/** The latest writeAutoAwqDir call's arguments. */
export function lastAutoAwqWrite(): AutoAwqWriteArgs {
  if (!record.args) throw new Error('writeAutoAwqDir was not called');
  return record.args;
}

export function clearAutoAwqWrites(): void {
  record.args = undefined;
}
