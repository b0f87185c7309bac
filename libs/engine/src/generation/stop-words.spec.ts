import { StopWordMatcher } from './stop-words';

describe('StopWordMatcher', () => {
  it('passes text through without stop words', () => {
    const m = new StopWordMatcher();
    expect(m.push('abc')).toEqual({ text: 'abc' });
    expect(m.flush()).toBe('');
  });

  it('holds back a possible stop-word prefix and cuts at the match across deltas', () => {
    const m = new StopWordMatcher(['\nUser:', 'END']);
    expect(m.push('Hello\nUs')).toEqual({ text: 'Hello' });
    expect(m.push('er: more')).toEqual({ text: '', matched: '\nUser:' });
    expect(m.push('ignored')).toEqual({ text: '' });
  });

  it('releases held text when it turns out not to be a stop word, and on flush', () => {
    const m = new StopWordMatcher(['END']);
    expect(m.push('the EN')).toEqual({ text: 'the ' });
    expect(m.push('D')).toEqual({ text: '', matched: 'END' });
    const n = new StopWordMatcher(['END']);
    expect(n.push('xE')).toEqual({ text: 'x' });
    expect(n.push('Nx')).toEqual({ text: 'ENx' });
    expect(n.push('E')).toEqual({ text: '' });
    expect(n.flush()).toBe('E');
  });

  it('picks the earliest of several matches', () => {
    const m = new StopWordMatcher(['cd', 'b']);
    expect(m.push('abcd')).toEqual({ text: 'a', matched: 'b' });
  });
});
