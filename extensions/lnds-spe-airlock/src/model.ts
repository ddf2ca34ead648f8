/**
 * Pure helpers of the airlock extension: shapes of the airlock API's answers, CSV reading for
 * previews, flagged cells, which files may be exported. No JupyterLab imports, so jest tests them
 * directly.
 */

export type RequestStatus =
  | 'draft'
  | 'submitted'
  | 'returned'
  | 'approved'
  | 'rejected'
  | 'released'
  | 'withdrawn';
export type FileKind = 'output' | 'supporting';
export type VoteValue = 'approve' | 'changes_requested' | 'reject';

export const VOTES: { value: VoteValue; label: string }[] = [
  { value: 'approve', label: 'Approve' },
  { value: 'changes_requested', label: 'Changes requested' },
  { value: 'reject', label: 'Reject' }
];

/** The folder (relative to the server's root) whose files may be exported. */
export const OUTPUTS_DIR = 'outputs';

export interface IChecks {
  status?: 'pass' | 'fail' | 'review';
  reasons?: string[];
  flagged?: { [rule: string]: number[][] };
  differencing?: { combined_with: string }[];
}

export interface IRequestFile {
  name: string;
  kind: FileKind;
  sha256: string;
  size: number;
  added_by: string;
  added_at: string;
  checks: IChecks;
  votes: { [checker: string]: VoteValue };
}

export interface IComment {
  author: string;
  file: string | null;
  round: number;
  text: string;
  time: string;
}

export interface ICan {
  [action: string]: boolean;
}

export interface IRequestSummary {
  id: string;
  project: string;
  author: string;
  status: RequestStatus;
  title: string;
  round: number;
  created_at: string;
  updated_at: string;
  files?: number;
  reviews?: number;
  to_review?: boolean;
}

export interface IRequestDetail extends Omit<IRequestSummary, 'files'> {
  purpose: string;
  disclosure_controls: string;
  reviews_submitted: string[];
  review_count: number;
  files: IRequestFile[];
  comments: IComment[];
  can: ICan;
}

export interface IOutputFile {
  name: string;
  size: number;
  modified: number;
}

/** The name of a file inside the outputs folder, or null if the path is not under it. */
export function outputName(path: string): string | null {
  const clean = path.replace(/^\/+/, '');
  const prefix = OUTPUTS_DIR + '/';
  if (!clean.startsWith(prefix)) {
    return null;
  }
  const name = clean.slice(prefix.length);
  if (!name || name.split('/').some(part => part === '..' || part === '' || part.startsWith('.'))) {
    return null;
  }
  return name;
}

/** Human words for a request's status. */
export function statusLabel(status: RequestStatus): string {
  const labels: { [key in RequestStatus]: string } = {
    draft: 'Draft',
    submitted: 'Submitted, under review',
    returned: 'Returned for changes',
    approved: 'Approved, awaiting release',
    rejected: 'Rejected',
    released: 'Released',
    withdrawn: 'Withdrawn'
  };
  return labels[status] ?? status;
}

/** May the requester still change this request (add, remove, edit, submit)? */
export function isEditable(status: RequestStatus): boolean {
  return status === 'draft' || status === 'returned';
}

/** Are checkers' comments shown to the requester at this status? */
export function commentsVisibleToRequester(status: RequestStatus): boolean {
  return ['returned', 'approved', 'rejected', 'released'].includes(status);
}

/** Rows of a CSV or TSV text, as pandas reads them for the checks (blank lines skipped). */
export function parseDelimited(text: string, separator = ','): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRow = () => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0] === '')) {
      rows.push(row);
    }
    row = [];
  };
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field === '') {
      quoted = true;
    } else if (ch === separator) {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') {
        i += 1;
      }
      endRow();
    } else {
      field += ch;
    }
    i += 1;
  }
  if (field !== '' || row.length) {
    endRow();
  }
  return rows;
}

/** The separator the checks read a file's table with, or null if it is not a table. */
export function tableSeparator(name: string, text: string): string | null {
  const lower = name.toLowerCase();
  if (lower.endsWith('.csv')) {
    return ',';
  }
  if (lower.endsWith('.tsv') || (lower.endsWith('.txt') && text.slice(0, 4096).includes('\t'))) {
    return '\t';
  }
  return null;
}

/** Rules flagging each data cell: key "row,col" (row 0 is the first row under the header). */
export function flaggedCells(checks: IChecks | undefined): Map<string, string[]> {
  const cells = new Map<string, string[]>();
  for (const [rule, positions] of Object.entries(checks?.flagged ?? {})) {
    for (const [row, col] of positions) {
      const key = `${row},${col}`;
      cells.set(key, [...(cells.get(key) ?? []), rule]);
    }
  }
  return cells;
}

export type PreviewKind = 'table' | 'image' | 'text';

/** How a checker's preview shows a file, by its name. */
export function previewKind(name: string): PreviewKind {
  const lower = name.toLowerCase();
  if (/\.(png|jpe?g|gif)$/.test(lower)) {
    return 'image';
  }
  if (/\.(csv|tsv)$/.test(lower)) {
    return 'table';
  }
  return 'text';
}

/** One line per automatic finding of a file, for the requester and the checkers. */
export function findingLines(checks: IChecks | undefined): string[] {
  if (!checks || !checks.status) {
    return [];
  }
  const lines = [...(checks.reasons ?? [])];
  for (const [rule, positions] of Object.entries(checks.flagged ?? {})) {
    const cells = positions.map(([r, c]) => `row ${r + 1}, column ${c + 1}`).join('; ');
    lines.push(`${rule}: ${positions.length} cell(s) flagged (${cells})`);
  }
  return lines;
}

/** The message of a failed airlock call: the API's `detail`, else the HTTP status. */
export function errorMessage(status: number, body: string): string {
  try {
    const data = JSON.parse(body);
    if (typeof data.detail === 'string') {
      return data.detail;
    }
    if (Array.isArray(data.detail) && data.detail.length) {
      return data.detail.map((d: any) => d.msg ?? String(d)).join('; ');
    }
  } catch {
    // not JSON: fall through
  }
  if (status === 404) {
    return 'not found: the request may have been removed';
  }
  if (status === 403) {
    return 'not allowed';
  }
  if (status >= 500) {
    return 'the airlock service is unreachable or failed: try again in a minute';
  }
  return `the airlock answered ${status}`;
}
