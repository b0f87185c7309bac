// Incremental detokenization for streaming. A token may end in the middle of a UTF-8 character (byte-level BPE) or
// decode differently depending on its left context (SentencePiece's leading-space handling), so we decode a short
// window of already-emitted tokens plus the new ones and emit only the new suffix, holding it back while it ends in
// U+FFFD (an incomplete character). `flush()` releases whatever is held at the end of the stream.

export interface DetokenizerOptions {
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = '\uFFFD';

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
      // the prefix is also held until it settles.)
      return '';
    }
    const delta = fullText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.emitted += delta;
    return delta;
  }

  /** Ends the stream: returns held-back text (an incomplete trailing character decodes as U+FFFD). */
  flush(): string {
    if (this.readOffset >= this.ids.length) return '';
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    const delta = fullText.startsWith(prefixText) ? fullText.slice(prefixText.length) : fullText;
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.emitted += delta;
    return delta;
  }
}
