// How `lmfleet chat` prints a reasoning model's reply: the thinking (<think>...</think>, split by the same parser the
// OpenAI API's reasoning_content uses) under a "thinking:" line, dimmed on a terminal, then the answer as written.
// Piped (stdout not a terminal) the same layout in plain text, no escape codes.
import { ReasoningStream, type ReasoningParser } from '@lmfleet/platform/serving/reasoning';

const DIM = '\x1b[2m';
const NORMAL = '\x1b[22m';

/** The parser `lmfleet chat` uses: --reasoning-parser when given ('none': none), else qwen3 for a Qwen3ForCausalLM, else none. */
export function chatReasoningParser(flag: ReasoningParser | 'none' | undefined, hfArchitecture: string): ReasoningParser | undefined {
  if (flag === 'none') return undefined;
  return flag ?? (hfArchitecture === 'Qwen3ForCausalLM' ? 'qwen3' : undefined);
}

/** One reply's streamed text -> what goes to stdout. Without a parser the text goes out as it is. */
export class ReplyPrinter {
  private readonly stream?: ReasoningStream;
  private thought = false; // the "thinking:" line is out
  private answered = false;

  constructor(mode: ReasoningParser | undefined, private readonly tty: boolean) {
    if (mode) this.stream = new ReasoningStream(mode);
  }

  /** The next piece of the reply's text; returns what to print now (text that may still be a tag is held). */
  push(text: string): string {
    return this.stream ? this.format(this.stream.push(text)) : text;
  }

  /** The end of the reply (finished or stopped): whatever was held back. */
  finish(): string {
    return this.stream ? this.format(this.stream.finish()) : '';
  }

  private format(parts: { reasoning: string; content: string }): string {
    let s = '';
    if (parts.reasoning) {
      if (!this.thought) s += `${this.dim('thinking:')}\n`;
      this.thought = true;
      s += this.dim(parts.reasoning);
    }
    if (parts.content) {
      if (this.thought && !this.answered) s += '\n\n';
      this.answered = true;
      s += parts.content;
    }
    return s;
  }

  private dim(s: string): string {
    return this.tty ? `${DIM}${s}${NORMAL}` : s;
  }
}
