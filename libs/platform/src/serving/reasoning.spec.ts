import { guideStart, parseReasoningParser, ReasoningStream, splitReasoning, type ReasoningParser } from './reasoning';

/** Feeds `text` in pieces of `size` characters and joins what comes out. */
function streamed(text: string, mode: ReasoningParser, size: number): { reasoning: string; content: string } {
  const s = new ReasoningStream(mode);
  const out = { reasoning: '', content: '' };
  for (let i = 0; i < text.length; i += size) {
    const p = s.push(text.slice(i, i + size));
    out.reasoning += p.reasoning;
    out.content += p.content;
  }
  const f = s.finish();
  return { reasoning: out.reasoning + f.reasoning, content: out.content + f.content };
}

describe('reasoning parsers', () => {
  const qwen3Thinking = '<think>\nThe user asks 2+2.\n\nThat is 4.\n</think>\n\nThe answer is 4.';

  it('qwen3: <think>...</think> becomes reasoning_content, the rest content; no think block: all content', () => {
    expect(splitReasoning(qwen3Thinking, 'qwen3')).toEqual({ reasoning: 'The user asks 2+2.\n\nThat is 4.', content: 'The answer is 4.' });
    expect(splitReasoning('  indented code\n', 'qwen3')).toEqual({ reasoning: null, content: '  indented code\n' });
    expect(splitReasoning('<think>\n\n</think>\n\nHi', 'qwen3')).toEqual({ reasoning: '', content: 'Hi' });
    // cut off while thinking (finish_reason length): all reasoning so far
    expect(splitReasoning('<think>\nstill going', 'qwen3')).toEqual({ reasoning: 'still going', content: '' });
  });

  it('deepseek_r1: the prompt opened the block, so the reply is reasoning until </think> (an opening tag is skipped)', () => {
    expect(splitReasoning('\nfirst think\n</think>\n\nanswer', 'deepseek_r1')).toEqual({ reasoning: 'first think', content: 'answer' });
    expect(splitReasoning('<think>\nx\n</think>answer', 'deepseek_r1')).toEqual({ reasoning: 'x', content: 'answer' });
    expect(splitReasoning('never closed', 'deepseek_r1')).toEqual({ reasoning: 'never closed', content: '' });
  });

  it.each([1, 2, 3, 5, 7, 1000])('streamed in pieces of %i characters: the same split as the whole text', (size) => {
    for (const mode of ['qwen3', 'deepseek_r1'] as const) {
      for (const text of [qwen3Thinking, 'plain <thin reply', '<think>a</thi', 'x</think>y\n', '<thinking is not the tag', '\n\n<think>\nA\n</think>\n\n\nB\n']) {
        const whole = splitReasoning(text, mode);
        expect(streamed(text, mode, size)).toEqual({ reasoning: whole.reasoning ?? '', content: whole.content });
      }
    }
  });

  it('nothing that may still become a tag goes out early', () => {
    const s = new ReasoningStream('qwen3');
    expect(s.push('<th')).toEqual({ reasoning: '', content: '' });
    expect(s.push('ink>\nabc\n</')).toEqual({ reasoning: 'abc', content: '' });
    expect(s.push('think>\n\nHello')).toEqual({ reasoning: '', content: 'Hello' });
    expect(s.push(' world')).toEqual({ reasoning: '', content: ' world' });
  });

  it('guided decoding starts after the thinking, unless the prompt closed the think block', () => {
    // deepseek_r1: the prompt opened the block, so the reply is free until </think>
    expect(guideStart('deepseek_r1')).toEqual({ after: '</think>' });
    expect(guideStart('deepseek_r1', { enable_thinking: false })).toEqual({ after: '</think>' });
    // qwen3: the first token opens the block (then free until </think>) or starts the formatted answer
    expect(guideStart('qwen3')).toEqual({ after: '</think>', opener: '<think>' });
    expect(guideStart('qwen3', { enable_thinking: true })).toEqual({ after: '</think>', opener: '<think>' });
    // qwen3 with thinking off: the template closed an empty block, the format applies from the first token
    expect(guideStart('qwen3', { enable_thinking: false })).toBeUndefined();
  });

  it("accepts vLLM's and LMDeploy's names, and refuses others by param", () => {
    expect(parseReasoningParser('qwen3')).toBe('qwen3');
    expect(parseReasoningParser('deepseek-r1')).toBe('deepseek_r1');
    expect(parseReasoningParser('qwen-qwq')).toBe('deepseek_r1');
    expect(() => parseReasoningParser('gpt', 'reasoning_parser')).toThrow(/reasoning_parser must be one of .*qwen3/);
  });
});
