import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidInputError } from '../errors';
import { isInside, pathSyntaxProblem, resolveUnderRoots } from './paths';

describe('pathSyntaxProblem', () => {
  const roots = ['/models', '/data/hf'];
  it.each([
    ['', /empty/],
    ['models/x', /absolute/],
    ['/models/../etc', /\.\./],
    ['/models/a/..', /\.\./],
    ['/etc/passwd', /outside/],
    ['/modelsX/a', /outside/],
    ['/models/a\0b', /NUL/],
  ])('refuses %j', (p, why) => {
    expect(pathSyntaxProblem(p, roots)).toMatch(why);
  });
  it('accepts paths inside a root', () => {
    expect(pathSyntaxProblem('/models/qwen', roots)).toBeNull();
    expect(pathSyntaxProblem('/data/hf/a/b/', roots)).toBeNull();
    expect(pathSyntaxProblem('/models', roots)).toBeNull();
  });
  it('needs configured roots', () => {
    expect(pathSyntaxProblem('/models/qwen', [])).toMatch(/MODEL_ROOTS/);
  });
  it('isInside', () => {
    expect(isInside('/a/b', '/a')).toBe(true);
    expect(isInside('/a', '/a')).toBe(true);
    expect(isInside('/ab', '/a')).toBe(false);
  });
});

describe('resolveUnderRoots', () => {
  let tmp: string;
  let root: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lmf-paths-'));
    root = path.join(tmp, 'root');
    fs.mkdirSync(path.join(root, 'model'), { recursive: true });
    fs.writeFileSync(path.join(root, 'model', 'data.txt'), 'x');
    fs.mkdirSync(path.join(tmp, 'outside'));
    fs.symlinkSync(path.join(tmp, 'outside'), path.join(root, 'escape'));
    fs.symlinkSync(path.join(root, 'model'), path.join(root, 'alias'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('returns the real path of a directory inside the root', async () => {
    await expect(resolveUnderRoots(path.join(root, 'model'), [root], 'directory')).resolves.toBe(fs.realpathSync(path.join(root, 'model')));
    await expect(resolveUnderRoots(path.join(root, 'alias'), [root], 'directory')).resolves.toBe(fs.realpathSync(path.join(root, 'model')));
  });
  it('refuses a symlink that leads out of the roots, saying why', async () => {
    await expect(resolveUnderRoots(path.join(root, 'escape'), [root], 'directory')).rejects.toThrow(/symlink.*outside the allowed roots/);
  });
  it('refuses missing paths and the wrong kind', async () => {
    await expect(resolveUnderRoots(path.join(root, 'nope'), [root], 'directory')).rejects.toThrow(/does not exist/);
    await expect(resolveUnderRoots(path.join(root, 'model', 'data.txt'), [root], 'directory')).rejects.toThrow(/not a directory/);
    await expect(resolveUnderRoots(path.join(root, 'model'), [root], 'file', 'eval.datasetFile')).rejects.toThrow(/^eval.datasetFile: .* not a file/);
  });
  it('throws InvalidInputError (→ 400)', async () => {
    await expect(resolveUnderRoots('/etc', [root], 'directory')).rejects.toBeInstanceOf(InvalidInputError);
  });
});
