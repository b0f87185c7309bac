import { buildLineage, childrenOf } from './lineage';

describe('lineage', () => {
  const versions = [
    { id: 'base', parentVersionId: null },
    { id: 'awq', parentVersionId: 'base' },
    { id: 'ws', parentVersionId: 'awq' },
    { id: 'other', parentVersionId: 'base' },
  ];
  it('lists ancestors nearest first', () => {
    const l = buildLineage(versions);
    expect(l.get('base')).toEqual([]);
    expect(l.get('awq')).toEqual(['base']);
    expect(l.get('ws')).toEqual(['awq', 'base']);
  });
  it('lists children', () => {
    const c = childrenOf(versions);
    expect(c.get('base')).toEqual(['awq', 'other']);
    expect(c.get('ws')).toEqual([]);
  });
  it('stops at unknown parents and cycles', () => {
    const l = buildLineage([
      { id: 'a', parentVersionId: 'b' },
      { id: 'b', parentVersionId: 'a' },
      { id: 'c', parentVersionId: 'missing' },
    ]);
    expect(l.get('a')).toEqual(['b']);
    expect(l.get('c')).toEqual(['missing']);
  });
});
