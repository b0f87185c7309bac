// Incremental detokenization for streaming. A token may end in the middle of a UTF-8 character (byte-level BPE) or
// decode differently depending on its left context (SentencePiece's leading-space handling), so we decode a short
// window of already-emitted tokens plus the new ones and emit only the new suffix, holding it back while it ends in
// U+FFFD (an incomplete character). `flush()` releases whatever is held at the end of the stream.

export interface DetokenizerOptions {
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = '\uFFFD';
/**
 * An incomplete character spans at most 3 pending tokens (a 4-byte UTF-8 character in byte tokens). Past this many
 * pending tokens a trailing U+FFFD is bytes that will never form a character (a model emitting invalid UTF-8: a broken
 * or random-weight model), so the text up to the last 3 tokens is emitted as decoded, U+FFFD included, instead of
 * holding the stream back and re-decoding a window that grows with every token.
 */
const MAX_HELD_TOKENS = 8;
const TAIL_TOKENS = 3;

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  /** Start of the context window: tokens before it are never decoded again. */
  private prefixOffset = 0;
  /** Tokens before this index have been emitted as text. */
  private readOffset = 0;
  private emitted = '';

  constructor(private readonly decode: (ids: number[]) => string, _opts: DetokenizerOptions = {}) {}

  /** All text emitted so far. */
  get text(): string {
    return this.emitted;
  }

  get tokenCount(): number {
    return this.ids.length;
  }

  /** Adds tokens; returns the newly complete text ('' while a character is still incomplete). */
  push(tokens: ArrayLike<number>): string {
    for (let i = 0; i < tokens.length; i++) this.ids.push(tokens[i]);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT) || !fullText.startsWith(prefixText)) {
      // Nothing new, or the tail is an incomplete character: wait for more tokens. (A context change that rewrites
      // the prefix is also held until it settles.) Held too long: all but the last few tokens go out as they decode.
      return this.ids.length - this.readOffset > MAX_HELD_TOKENS ? this.release(prefixText, this.ids.length - TAIL_TOKENS) : '';
    }
    return this.release(prefixText, this.ids.length, fullText);
  }

  /** Emits the text of the tokens up to `upTo` past `prefixText` and moves the window there. */
  private release(prefixText: string, upTo: number, text = this.decode(this.ids.slice(this.prefixOffset, upTo))): string {
    const delta = text.startsWith(prefixText) ? text.slice(prefixText.length) : text;
    this.prefixOffset = this.readOffset;
    this.readOffset = upTo;
    this.emitted += delta;
    return delta;
  }

  /** Ends the stream: returns held-back text (an incomplete trailing character decodes as U+FFFD). */
  flush(): string {
    if (this.readOffset >= this.ids.length) return '';
    return this.release(this.decode(this.ids.slice(this.prefixOffset, this.readOffset)), this.ids.length);
  }
}
