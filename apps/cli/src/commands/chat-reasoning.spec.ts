import { chatReasoningParser, ReplyPrinter } from './chat-reasoning';
import type { ReasoningParser } from '@lmfleet/platform/serving/reasoning';

/** Streams `chunks` through a printer and joins what it prints. */
function print(mode: ReasoningParser | undefined, tty: boolean, chunks: string[]): string {
  const p = new ReplyPrinter(mode, tty);
  return chunks.map((c) => p.push(c)).join('') + p.finish();
}

describe('lmfleet chat: reasoning output', () => {
  const reply = ['<thi', 'nk>\nLet me', ' see.\n</th', 'ink>\n\nThe', ' answer.'];

  it('on a terminal: a dim "thinking:" line, the thinking dimmed, then the answer as written', () => {
    expect(print('qwen3', true, reply)).toBe('\x1b[2mthinking:\x1b[22m\n\x1b[2mLet me\x1b[22m\x1b[2m see.\x1b[22m\n\nThe answer.');
  });

  it('piped: the same layout in plain text, no escape codes', () => {
    expect(print('qwen3', false, reply)).toBe('thinking:\nLet me see.\n\nThe answer.');
  });

  it('qwen3 reply that does not think: the answer alone, as written', () => {
    expect(print('qwen3', true, ['\nHello', ' there'])).toBe('\nHello there');
  });

  it('an empty think block prints no "thinking:" line', () => {
    expect(print('qwen3', true, ['<think>\n\n</think>\n\n', 'Hi'])).toBe('Hi');
  });

  it('deepseek_r1: the prompt opened the block, so the reply is thinking until </think>', () => {
    expect(print('deepseek_r1', false, ['Hmm.', '\n</think>\n\n', 'Yes.'])).toBe('thinking:\nHmm.\n\nYes.');
  });

  it('a reply stopped while thinking flushes what was held', () => {
    expect(print('qwen3', false, ['<think>\nstill going\n'])).toBe('thinking:\nstill going');
  });

  it('without a parser the text goes out unchanged, think tags included', () => {
    expect(print(undefined, true, reply)).toBe(reply.join(''));
  });

  it('defaults to qwen3 for Qwen3ForCausalLM only; --reasoning-parser wins', () => {
    expect(chatReasoningParser(undefined, 'Qwen3ForCausalLM')).toBe('qwen3');
    expect(chatReasoningParser(undefined, 'Qwen2ForCausalLM')).toBeUndefined();
    expect(chatReasoningParser('deepseek_r1', 'Qwen3ForCausalLM')).toBe('deepseek_r1');
    expect(chatReasoningParser('qwen3', 'LlamaForCausalLM')).toBe('qwen3');
    expect(chatReasoningParser('none', 'Qwen3ForCausalLM')).toBeUndefined(); // --reasoning-parser none: as written
  });
});
