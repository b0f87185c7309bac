/** bytes → the printable characters byte-level BPE writes them as (GPT-2's bytes_to_unicode): printable Latin-1
 * bytes map to themselves, the others to U+0100 onwards in byte order. */
export function byteLevelAlphabet(): string[] {
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCodePoint(printable ? b : next++);
  }
  return out;
}
