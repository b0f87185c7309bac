import { changedRows, MAX_TRACKED_ROWS } from './changes';

describe('changedRows', () => {
  const sig = (r: { id: string; v: number }) => String(r.v);

  it('returns new rows and rows whose signature changed, once', () => {
    const seen = new Map<string, string>();
    expect(changedRows([{ id: 'a', v: 1 }, { id: 'b', v: 1 }], seen, sig).map((r) => r.id)).toEqual(['a', 'b']);
    expect(changedRows([{ id: 'a', v: 1 }, { id: 'b', v: 2 }], seen, sig).map((r) => r.id)).toEqual(['b']);
    expect(changedRows([{ id: 'a', v: 1 }, { id: 'b', v: 2 }], seen, sig)).toEqual([]);
  });

  it('forgets the least recently changed rows past the bound', () => {
    const seen = new Map<string, string>();
    const rows = Array.from({ length: MAX_TRACKED_ROWS + 3 }, (_, i) => ({ id: `r${i}`, v: 0 }));
    changedRows(rows, seen, sig);
    expect(seen.size).toBe(MAX_TRACKED_ROWS);
    expect(seen.has('r0')).toBe(false);
    expect(seen.has(`r${MAX_TRACKED_ROWS + 2}`)).toBe(true);
  });
});
