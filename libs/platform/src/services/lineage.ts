/** Version lineage from parent links (pure). */

export interface VersionLink {
  id: string;
  parentVersionId: string | null;
}

/**
 * For each version, its ancestors' ids, nearest first (`[parent, grandparent, ..., base]`). A parent that
 * is not in `versions` ends the chain; a cycle (corrupt data) is cut at the first repeat.
 */
export function buildLineage(versions: VersionLink[]): Map<string, string[]> {
  const parentOf = new Map(versions.map((v) => [v.id, v.parentVersionId]));
  const out = new Map<string, string[]>();
  for (const v of versions) {
    const chain: string[] = [];
    const seen = new Set([v.id]);
    let p = v.parentVersionId;
    while (p && !seen.has(p)) {
      chain.push(p);
      seen.add(p);
      if (!parentOf.has(p)) break;
      p = parentOf.get(p) ?? null;
    }
    out.set(v.id, chain);
  }
  return out;
}

/** Children of each version id (the lineage read downwards). */
export function childrenOf(versions: VersionLink[]): Map<string, string[]> {
  const out = new Map<string, string[]>(versions.map((v) => [v.id, []]));
  for (const v of versions) {
    if (v.parentVersionId && out.has(v.parentVersionId)) out.get(v.parentVersionId)!.push(v.id);
  }
  return out;
}
