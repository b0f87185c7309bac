import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyModel } from '@lmfleet/engine';
import { createFakeNative } from '@lmfleet/engine/testing/fake-native';
import { run } from './main';
import { captureIO } from './testing/capture-io';

const makeIO = (input: string[] = [], native?: ReturnType<typeof createFakeNative>['native']) => captureIO({ stdin: input, native });

describe('lmfleet CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-cli-'));
    writeTinyModel(path.join(dir, 'model'), { arch: 'qwen2' });
    fs.writeFileSync(path.join(dir, 'data.txt'), 'the cat sat on the mat. '.repeat(40));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists LMDeploy-style subcommands and flags in --help', async () => {
    const h = makeIO();
    expect(await run(['--help'], h.io)).toBe(0);
    for (const c of ['lite', 'convert', 'chat', 'serve', 'eval']) expect(h.out()).toContain(c);
    const a = makeIO();
    expect(await run(['lite', 'auto_awq', '--help'], a.io)).toBe(0);
    for (const f of ['--calib-dataset', '--calib-samples', '--calib-seqlen', '--work-dir', '--w-bits', '--w-group-size']) expect(a.out()).toContain(f);
    const c = makeIO();
    expect(await run(['convert', '--help'], c.io)).toBe(0);
    for (const f of ['--model-format', '--group-size', '--dst-path', '--tp']) expect(c.out()).toContain(f);
    const s = makeIO();
    expect(await run(['serve', 'api_server', '--help'], s.io)).toBe(0);
    for (const f of ['--server-port', '--cache-max-entry-count', '--session-len', '--backend', '--tp']) expect(s.out()).toContain(f);
    for (const cmd of [['chat'], ['serve', 'api_server'], ['deploy']]) {
      const x = makeIO();
      expect(await run([...cmd, '--help'], x.io)).toBe(0);
      for (const f of ['--speculative-algorithm', '--speculative-num-draft-tokens', '--prompt-lookup-max', '--prompt-lookup-min']) expect(x.out()).toContain(f);
    }
    for (const cmd of [['chat'], ['eval', 'ppl']]) {
      const x = makeIO();
      expect(await run([...cmd, '--help'], x.io)).toBe(0);
      expect(x.out()).toContain('--tp');
    }
  });

  it.each([
    [['serve', 'api_server', '/nonexistent/model'], /is not a model directory or workspace/],
    [['eval', 'ppl', '--api', 'http://127.0.0.1:9', '--dataset', 'x.txt', '--seqlen', '8', '--tp', '2', 'm'], /--tp 2 runs locally only/],
    [['serve', 'api_server', '/nonexistent/model', '--quant-policy', '3'], /--quant-policy must be 0, 4 or 8/],
    [['serve', 'api_client', 'not a url'], /not a URL/],
    [['serve', 'api_client', 'ftp://x'], /only http\(s\) URLs/],
    // speculative decoding: ngram only, counts by the engine's rules named as flags, no count without the algorithm
    [['serve', 'api_server', '/nonexistent/model', '--speculative-algorithm', 'eagle3'], /--speculative-algorithm eagle3: only ngram is supported \(prompt lookup, no draft model\)/],
    [['chat', '/nonexistent/model', '--speculative-algorithm', 'deepseek_mtp'], /^lmfleet chat: --speculative-algorithm deepseek_mtp: only ngram is supported/],
    [['chat', '/nonexistent/model', '--speculative-num-draft-tokens', '4'], /^lmfleet chat: --speculative-num-draft-tokens without --speculative-algorithm/],
    [['deploy', '--name', 'x', '--prompt-lookup-max', '3', '--api', 'http://127.0.0.1:9'], /--prompt-lookup-max without --speculative-algorithm/],
    [['deploy', '--name', 'x', '--speculative-algorithm', 'ngram', '--speculative-num-draft-tokens', '16', '--api', 'http://127.0.0.1:9'], /^lmfleet deploy: --speculative-num-draft-tokens must be an integer in \[1, 15\]; got 16/],
    [['serve', 'api_server', '/nonexistent/model', '--speculative-algorithm', 'ngram', '--prompt-lookup-max', '2', '--prompt-lookup-min', '3'], /--prompt-lookup-min must be an integer in \[1, 2\]; got 3/],
    [['chat', '/nonexistent/model', '--speculative-algorithm', 'ngram', '--prompt-lookup-max', '65'], /--prompt-lookup-max must be an integer in \[1, 64\]; got 65/],
  ])('%j exits 2 saying why', async (argv, why) => {
    const h = makeIO();
    expect(await run(argv as string[], h.io)).toBe(2);
    expect(h.err()).toMatch(why);
    expect(h.out()).toBe('');
  });

  it.each([
    [['--api', 'http://localhost:3000', 'chat', 'm'], /serve api_client URL/],
    [['--api', 'http://localhost:3000', 'serve', 'api_client', 'http://x'], /give the server URL as the argument/],
  ])('%j exits 2 saying what to use', async (argv, why) => {
    const h = makeIO();
    expect(await run(argv as string[], h.io)).toBe(2);
    expect(h.err()).toMatch(why);
  });

  it('eval ppl prints JSON and a progress bar on stderr', async () => {
    const fake = createFakeNative();
    const h = makeIO([], fake.native);
    const code = await run(['eval', 'ppl', path.join(dir, 'model'), '--dataset', path.join(dir, 'data.txt'), '--seqlen', '32', '--json', '--max-windows', '3'], h.io);
    expect(h.err()).toContain('eval ppl 3/3');
    expect(code).toBe(0);
    const r = JSON.parse(h.out());
    expect(r).toMatchObject({ windows: 3, seqlen: 32 });
    expect(r.ppl).toBeGreaterThan(1);
  });

  it('eval ppl --quant-policy 8 loads the model with an int8 KV cache and says so; other values are refused', async () => {
    const fake = createFakeNative();
    const h = makeIO([], fake.native);
    const args = ['eval', 'ppl', path.join(dir, 'model'), '--dataset', path.join(dir, 'data.txt'), '--seqlen', '32', '--max-windows', '1'];
    expect(await run([...args, '--quant-policy', '8'], h.io)).toBe(0);
    expect(fake.log.configs[fake.log.configs.length - 1].kvQuantPolicy).toBe(8);
    expect(h.out()).toContain('KV cache int8 online');
    const bad = makeIO([], fake.native);
    expect(await run([...args, '--quant-policy', '2'], bad.io)).not.toBe(0); // commander's usage error
    expect(bad.err()).toMatch(/--quant-policy.*choices/i);

  });

  it('eval ppl --tp 2 and chat --tp 2 load the model sharded over 2 ranks', async () => {
    const fake = createFakeNative();
    const h = makeIO([], fake.native);
    const args = ['eval', 'ppl', path.join(dir, 'model'), '--dataset', path.join(dir, 'data.txt'), '--seqlen', '32', '--max-windows', '1'];
    expect(await run([...args, '--tp', '2'], h.io)).toBe(0);
    expect(fake.log.configs[fake.log.configs.length - 1].tp).toBe(2);
    expect(await run(args, makeIO([], fake.native).io)).toBe(0);
    expect(fake.log.configs[fake.log.configs.length - 1].tp).toBeUndefined(); // tp 1: the config says nothing
    const chatFake = createFakeNative({ script: () => [30, 31] });
    const c = makeIO(['hello\n', 'exit\n'], chatFake.native);
    expect(await run(['chat', path.join(dir, 'model'), '--tp', '2', '--max-new-tokens', '2'], c.io)).toBe(0);
    expect(chatFake.log.configs[chatFake.log.configs.length - 1].tp).toBe(2);
  });

  it('eval ppl reports a bad model directory clearly', async () => {
    const h = makeIO([], createFakeNative().native);
    expect(await run(['eval', 'ppl', path.join(dir, 'nope'), '--dataset', path.join(dir, 'data.txt'), '--seqlen', '32'], h.io)).toBe(1);
    expect(h.err()).toMatch(/model directory does not exist.*\[E_MODEL_FORMAT\]/);
  });

  it('chat streams replies and keeps one session across turns; "end" starts a new one', async () => {
    const fake = createFakeNative({ script: () => [30, 31, 32, writeInfo.imEndId] });
    const writeInfo = writeTinyModel(path.join(dir, 'chatmodel'), { arch: 'qwen2' });
    const h = makeIO(['hello\n', 'again\n', 'end\n', 'fresh\n', 'exit\n', 'ignored\n'], fake.native);
    expect(await run(['chat', writeInfo.dir, '--temperature', '0', '--max-new-tokens', '8'], h.io)).toBe(0);
    expect(fake.log.submitted).toHaveLength(3);
    const [a, b, c] = fake.log.submitted;
    expect(a.sessionId).toBe(b.sessionId);
    expect(b.inputIds.length).toBeLessThan(a.inputIds.length + 5);
    expect(c.inputIds.length).toBeGreaterThan(b.inputIds.length - 2);
    expect(a.sampling).toMatchObject({ temperature: 0, topK: 40, topP: 0.8 });
    expect(a.sampling).not.toHaveProperty('minP');
    expect(h.out().split('\n').filter((l) => l.length > 0)).toHaveLength(3);
    expect(fake.log.disposedEngines).toBe(1);
  });

  it('chat --speculative-algorithm ngram decodes speculatively (3 draft tokens by default; the counts reach the engine)', async () => {
    const fake = createFakeNative({ script: () => [30, 31] });
    expect(await run(['chat', path.join(dir, 'model'), '--max-new-tokens', '2', '--speculative-algorithm', 'ngram'], makeIO(['hi\n'], fake.native).io)).toBe(0);
    expect(fake.log.engineOptions.at(-1)).toMatchObject({ specDraftTokens: 3, specNgramMax: 4, specNgramMin: 1 });
    const v = makeIO(['hi\n'], fake.native);
    const argv = ['chat', path.join(dir, 'model'), '--max-new-tokens', '2', '--speculative-algorithm', 'ngram', '--speculative-num-draft-tokens', '6', '--prompt-lookup-max', '3', '--prompt-lookup-min', '2', '-v'];
    expect(await run(argv, v.io)).toBe(0);
    expect(fake.log.engineOptions.at(-1)).toMatchObject({ specDraftTokens: 6, specNgramMax: 3, specNgramMin: 2 });
    expect(v.err()).toMatch(/, 0 of 0 draft tokens accepted\n/); // -v: the reply's drafts (the fake engine drafts none)
    expect(await run(['chat', path.join(dir, 'model'), '--max-new-tokens', '2'], makeIO(['hi\n'], fake.native).io)).toBe(0);
    expect(fake.log.engineOptions.at(-1)).not.toHaveProperty('specDraftTokens'); // off unless asked for
  });

  it('chat --min-p reaches the engine', async () => {
    const fake = createFakeNative({ script: () => [30] });
    const h = makeIO(['hey\n'], fake.native);
    expect(await run(['chat', path.join(dir, 'model'), '--min-p', '0.05', '--max-new-tokens', '2'], h.io)).toBe(0);
    expect(fake.log.submitted[0].sampling).toMatchObject({ minP: 0.05 });
    const bad = makeIO(['hey\n'], fake.native);
    expect(await run(['chat', path.join(dir, 'model'), '--min-p', '1.5'], bad.io)).toBe(1); // commander's usage error
    expect(bad.err()).toMatch(/--min-p must be a number in \[0, 1\]/);
  });

  it('chat --reasoning-parser prints the thinking apart from the answer (dimmed on a terminal); qwen3 by default for Qwen3ForCausalLM', async () => {
    const { Tokenizer } = await import('@lmfleet/engine');
    const qwen3 = writeTinyModel(path.join(dir, 'qwen3'), { arch: 'qwen3' });
    const chatOnce = async (model: string, extra: string[], tty = false) => {
      const reply = [...Tokenizer.fromDir(model).encode('<think>\nhm\n</think>\n\nok', { addSpecialTokens: false }), qwen3.imEndId];
      const fake = createFakeNative({ script: () => reply });
      const h = makeIO(['hi\n'], fake.native);
      const io = tty ? { ...h.io, stdout: { write: h.io.stdout.write, isTTY: true } } : h.io;
      expect(await run(['chat', model, '--max-new-tokens', '32', ...extra], io)).toBe(0);
      return h.out();
    };
    expect(await chatOnce(qwen3.dir, [])).toBe('thinking:\nhm\n\nok\n'); // piped: plain text
    expect(await chatOnce(qwen3.dir, ['--reasoning-parser', 'none'])).toBe('<think>\nhm\n</think>\n\nok\n'); // as written
    // (each streamed piece of thinking is dimmed on its own: merge the back-to-back off/on pairs)
    expect((await chatOnce(qwen3.dir, [], true)).replace(/\x1b\[22m\x1b\[2m/g, '')).toBe('\x1b[2mthinking:\x1b[22m\n\x1b[2mhm\x1b[22m\n\nok\n');
    const qwen2 = path.join(dir, 'model');
    expect(await chatOnce(qwen2, [])).toBe('<think>\nhm\n</think>\n\nok\n'); // no parser for other architectures
    expect(await chatOnce(qwen2, ['--reasoning-parser', 'qwen3'])).toBe('thinking:\nhm\n\nok\n');
    expect(await chatOnce(qwen2, ['--reasoning-parser', 'qwen-qwq'])).toBe('thinking:\nhm\n\nok\n'); // LMDeploy's name: deepseek_r1
    const bad = makeIO(['hi\n']);
    expect(await run(['chat', qwen2, '--reasoning-parser', 'gpt'], bad.io)).toBe(1); // commander's usage error
    expect(bad.err()).toMatch(/--reasoning-parser must be one of .*qwen3/);
    const help = makeIO();
    expect(await run(['chat', '--help'], help.io)).toBe(0);
    expect(help.out()).toContain('--reasoning-parser');
  });

  it('chat --chat-template replaces the model template', async () => {
    const fake = createFakeNative({ script: () => [30] });
    fs.writeFileSync(path.join(dir, 't.jinja'), "{% for m in messages %}[{{ m['content'] }}]{% endfor %}>");
    const h = makeIO(['hey\n'], fake.native);
    expect(await run(['chat', path.join(dir, 'model'), '--chat-template', path.join(dir, 't.jinja'), '--max-new-tokens', '2'], h.io)).toBe(0);
    const { Tokenizer } = await import('@lmfleet/engine');
    expect(Tokenizer.fromDir(path.join(dir, 'model')).decode(fake.log.submitted[0].inputIds)).toBe('[hey]>');
    const bad = makeIO([], fake.native);
    expect(await run(['chat', path.join(dir, 'model'), '--chat-template', path.join(dir, 'missing.jinja')], bad.io)).toBe(2);
  });
});
