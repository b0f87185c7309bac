/** A row's state as a string: a change of signature is a change worth publishing. */
export type Signature = string;

/** Signatures kept at most; the oldest are forgotten first (a forgotten row that changes again is re-sent). */
export const MAX_TRACKED_ROWS = 5000;

/**
 * The rows whose signature differs from the one last seen (new rows included), in input order; updates
 * `seen` (pure apart from that map).
 */
export function changedRows<T extends { id: string }>(rows: T[], seen: Map<string, Signature>, signature: (r: T) => Signature): T[] {
  const out: T[] = [];
  for (const r of rows) {
    const sig = signature(r);
    if (seen.get(r.id) === sig) continue;
    seen.delete(r.id); // re-insert: the Map's order is then least recently changed first
    seen.set(r.id, sig);
    out.push(r);
  }
  while (seen.size > MAX_TRACKED_ROWS) seen.delete(seen.keys().next().value as string);
  return out;
}
