// Stop words are matched on the detokenized text. Text that could still become a stop word (a suffix equal to a
// stop word's prefix) is held back, so the caller never has to retract text it already streamed.

export interface StopWordResult {
  /** Text safe to emit now. */
  text: string;
  /** The stop word that matched (the text is cut just before it), if any. */
  matched?: string;
}

export class StopWordMatcher {
  private held = '';
  private done = false;
  private readonly words: string[];

  constructor(words: readonly string[] = []) {
    this.words = words.filter((w) => w.length > 0);
  }

  get active(): boolean {
    return this.words.length > 0;
  }

  push(delta: string): StopWordResult {
    if (this.done) return { text: '' };
    if (!this.active) return { text: delta };
    const buf = this.held + delta;
    let best = -1;
    let matched: string | undefined;
    for (const w of this.words) {
      const i = buf.indexOf(w);
      if (i >= 0 && (best < 0 || i < best)) {
        best = i;
        matched = w;
      }
    }
    if (matched !== undefined) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, best), matched };
    }
    let keep = 0;
    for (const w of this.words) {
      for (let n = Math.min(w.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(w.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep) };
  }

  /** End of stream: releases held text (it did not become a stop word). */
  flush(): string {
    if (this.done) return '';
    const t = this.held;
    this.held = '';
    return t;
  }
}
