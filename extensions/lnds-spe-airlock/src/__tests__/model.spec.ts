import {
  commentsVisibleToRequester,
  errorMessage,
  findingLines,
  flaggedCells,
  isEditable,
  outputName,
  parseDelimited,
  previewKind,
  statusLabel,
  tableSeparator
} from '../model';

describe('outputName', () => {
  it('accepts files under outputs/ only', () => {
    expect(outputName('outputs/table.csv')).toBe('table.csv');
    expect(outputName('/outputs/sub/t.csv')).toBe('sub/t.csv');
    expect(outputName('data/survey/survey.csv')).toBeNull();
    expect(outputName('outputs')).toBeNull();
    expect(outputName('outputs/')).toBeNull();
    expect(outputName('outputs/../data/x.csv')).toBeNull();
    expect(outputName('outputs/.hidden')).toBeNull();
    expect(outputName('outputsx/t.csv')).toBeNull();
  });
});

describe('parseDelimited', () => {
  it('reads quotes, escaped quotes, CRLF and skips blank lines', () => {
    const text = 'region,"F, count",M\r\nNorth,12,15\n\n"So""uth",3,20\n';
    expect(parseDelimited(text)).toEqual([
      ['region', 'F, count', 'M'],
      ['North', '12', '15'],
      ['So"uth', '3', '20']
    ]);
  });
  it('reads a last line without newline and tabs', () => {
    expect(parseDelimited('a\tb\n1\t2', '\t')).toEqual([
      ['a', 'b'],
      ['1', '2']
    ]);
  });
});

describe('flaggedCells', () => {
  it('maps data cells to the rules that flag them', () => {
    const cells = flaggedCells({
      flagged: { threshold: [[1, 1]], dominance: [[1, 1], [0, 2]] }
    });
    expect(cells.get('1,1')).toEqual(['threshold', 'dominance']);
    expect(cells.get('0,2')).toEqual(['dominance']);
    expect(cells.has('0,0')).toBe(false);
    expect(flaggedCells(undefined).size).toBe(0);
  });
});

describe('findingLines', () => {
  it('lists reasons then flagged cells, nothing before the checks ran', () => {
    expect(findingLines({})).toEqual([]);
    const lines = findingLines({
      status: 'fail',
      reasons: ['threshold: 1 cell under 10'],
      flagged: { threshold: [[1, 1]] }
    });
    expect(lines[0]).toBe('threshold: 1 cell under 10');
    expect(lines[1]).toBe('threshold: 1 cell(s) flagged (row 2, column 2)');
  });
});

describe('request states', () => {
  it('only drafts and returned requests are editable', () => {
    expect(isEditable('draft')).toBe(true);
    expect(isEditable('returned')).toBe(true);
    expect(isEditable('submitted')).toBe(false);
    expect(isEditable('released')).toBe(false);
  });
  it('shows comments to the requester once returned or decided', () => {
    expect(commentsVisibleToRequester('submitted')).toBe(false);
    expect(commentsVisibleToRequester('returned')).toBe(true);
    expect(commentsVisibleToRequester('released')).toBe(true);
    expect(statusLabel('returned')).toBe('Returned for changes');
  });
});

describe('previews and errors', () => {
  it('chooses the preview by file name', () => {
    expect(previewKind('t.CSV')).toBe('table');
    expect(previewKind('plot.png')).toBe('image');
    expect(previewKind('notes.md')).toBe('text');
    expect(tableSeparator('t.txt', 'a\tb')).toBe('\t');
    expect(tableSeparator('t.txt', 'a b')).toBeNull();
  });
  it('prefers the API detail, then words for the status', () => {
    expect(errorMessage(409, '{"detail": "request is submitted"}')).toBe('request is submitted');
    expect(errorMessage(422, '{"detail": [{"msg": "field required"}]}')).toBe('field required');
    expect(errorMessage(404, 'nope')).toMatch(/not found/);
    expect(errorMessage(502, '')).toMatch(/unreachable/);
  });
});
