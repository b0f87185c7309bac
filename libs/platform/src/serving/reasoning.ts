// Reasoning models (Qwen3, QwQ, DeepSeek-R1 and its distillations) write their thinking between <think> and </think>
// before the answer. A deployment with a reasoning parser (vLLM's and LMDeploy's --reasoning-parser) returns that part
// as `reasoning_content` beside `content`, streamed or not. Pure text processing: unit-tested beside this file.
import { InvalidInputError } from '../errors';

/**
 * qwen3: the reply is reasoning only when it opens with <think> (Qwen3 with thinking on); otherwise it is all content
 * (thinking off: the template closed an empty think block in the prompt).
 * deepseek_r1: the prompt already opened the think block (DeepSeek-R1, QwQ, Qwen3 *-Thinking templates end the
 * generation prompt with <think>), so the reply is reasoning until </think>; an opening <think> is skipped if written.
 */
export type ReasoningParser = 'qwen3' | 'deepseek_r1';

export const REASONING_PARSERS: readonly ReasoningParser[] = ['qwen3', 'deepseek_r1'];

// LMDeploy's and vLLM's spellings of the same behaviours
const ALIASES: Record<string, ReasoningParser> = {
  qwen3: 'qwen3',
  deepseek_r1: 'deepseek_r1',
  'deepseek-r1': 'deepseek_r1',
  'qwen-qwq': 'deepseek_r1',
  qwq: 'deepseek_r1',
};

/** The names a deployment's reasoningParser takes. */
export const REASONING_PARSER_NAMES: readonly string[] = Object.keys(ALIASES);

/** A parser name as vLLM or LMDeploy spell it → ours; anything else is a 400 naming `param`. */
export function parseReasoningParser(name: unknown, param = 'reasoningParser'): ReasoningParser {
  const p = typeof name === 'string' ? ALIASES[name.toLowerCase()] : undefined;
  if (!p) throw new InvalidInputError(`${param} must be one of ${REASONING_PARSER_NAMES.join(', ')}; got ${JSON.stringify(name)}`, { param });
  return p;
}

const OPEN = '<think>';
const CLOSE = '</think>';

export interface ReasoningParts {
  reasoning: string;
  content: string;
}

/** Length of the longest suffix of `s` that is a proper prefix of `tag` (text that may still become the tag). */
function partialTagAt(s: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, s.length); n > 0; n--) if (tag.startsWith(s.slice(s.length - n))) return n;
  return 0;
}

/**
 * Splits streamed text into reasoning and content as it arrives. Text that might still turn into a tag (a partial
 * `</think>`, trailing newlines before it) is held back until the next push or finish(). The newlines around the tags
 * are dropped, as Qwen3's own template does when it puts reasoning back into a conversation.
 */
export class ReasoningStream {
  private state: 'start' | 'reasoning' | 'after' | 'content' = 'start';
  private buf = '';
  private leading = true; // reasoning: nothing emitted yet (its leading newlines are dropped)

  constructor(private readonly mode: ReasoningParser) {}

  /** Whether the reply has a think block: always for deepseek_r1 (the prompt opened it), once <think> came for qwen3. */
  get thought(): boolean {
    return this.mode === 'deepseek_r1' || this.opened;
  }
  private opened = false;

  push(text: string): ReasoningParts {
    this.buf += text;
    const out: ReasoningParts = { reasoning: '', content: '' };
    for (;;) {
      if (this.state === 'start') {
        const lead = this.buf.replace(/^\s+/, '');
        if (lead.startsWith(OPEN)) {
          this.buf = lead.slice(OPEN.length);
          this.state = 'reasoning';
          this.opened = true;
          continue;
        }
        if (OPEN.startsWith(lead)) return out; // nothing yet, or a partial <think>
        if (this.mode === 'qwen3') {
          this.state = 'content'; // as written, leading whitespace included
        } else {
          this.buf = lead;
          this.state = 'reasoning';
        }
        continue;
      }
      if (this.state === 'reasoning') {
        if (this.leading) {
          this.buf = this.buf.replace(/^\n+/, '');
          if (!this.buf) return out;
          this.leading = false;
        }
        const end = this.buf.indexOf(CLOSE);
        if (end >= 0) {
          out.reasoning += this.buf.slice(0, end).replace(/\n+$/, '');
          this.buf = this.buf.slice(end + CLOSE.length);
          this.state = 'after';
          continue;
        }
        // held: a partial </think> and the newlines just before it
        const tag = partialTagAt(this.buf, CLOSE);
        const before = this.buf.slice(0, this.buf.length - tag);
        const hold = tag + before.length - before.replace(/\n+$/, '').length;
        out.reasoning += this.buf.slice(0, this.buf.length - hold);
        this.buf = this.buf.slice(this.buf.length - hold);
        return out;
      }
      if (this.state === 'after') {
        this.buf = this.buf.replace(/^\s+/, '');
        if (!this.buf) return out;
        this.state = 'content';
        continue;
      }
      out.content += this.buf;
      this.buf = '';
      return out;
    }
  }

  /** The end of the reply: whatever was held back, by the state it was held in. */
  finish(): ReasoningParts {
    const rest = this.buf;
    this.buf = '';
    if (this.state === 'reasoning' || (this.state === 'start' && this.mode === 'deepseek_r1')) return { reasoning: rest.replace(/\n+$/, ''), content: '' };
    if (this.state === 'after') return { reasoning: '', content: '' };
    return { reasoning: '', content: rest };
  }
}

/** Where guided decoding starts in a reasoning model's reply (the engine's guideAfter / guideOpener). */
export interface GuideStart {
  /** The format applies once the reply contains this ('</think>'). */
  after: string;
  /** qwen3: the reply may skip the think block (Qwen3-Instruct-2507, models that do not think), so its first token
   *  either opens it (this text) or starts the formatted answer. Unset: the prompt opened the block. */
  opener?: string;
}

/**
 * Where guided decoding (response_format, tools "required") starts for a reasoning model: after its '</think>', so
 * the thinking is free and the answer follows the format, as vLLM does with a reasoning parser. For qwen3 the reply
 * thinks only if it opens with <think>; otherwise the format applies from the first token. Undefined (from the first
 * token) when the prompt already closed the block: qwen3 with enable_thinking false (the template writes an empty
 * think block).
 */
export function guideStart(mode: ReasoningParser, templateKwargs?: Record<string, unknown>): GuideStart | undefined {
  if (mode === 'qwen3' && templateKwargs?.enable_thinking === false) return undefined;
  return mode === 'qwen3' ? { after: CLOSE, opener: OPEN } : { after: CLOSE };
}

/** A whole reply: reasoning (null when the reply had none) and content. */
export function splitReasoning(text: string, mode: ReasoningParser): { reasoning: string | null; content: string } {
  const s = new ReasoningStream(mode);
  const a = s.push(text);
  const b = s.finish();
  return { reasoning: s.thought ? a.reasoning + b.reasoning : null, content: a.content + b.content };
}
