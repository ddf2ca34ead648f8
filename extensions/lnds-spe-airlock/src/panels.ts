/** The two airlock panels: the researcher's export requests and the output checker's review. */

import { Widget } from '@lumino/widgets';

import { AirlockClient, AirlockError } from './api';
import { button, h } from './dom';
import {
  commentsVisibleToRequester,
  FileKind,
  findingLines,
  flaggedCells,
  IOutputFile,
  IRequestDetail,
  IRequestFile,
  IRequestSummary,
  isEditable,
  parseDelimited,
  previewKind,
  statusLabel,
  tableSeparator,
  VOTES,
  VoteValue
} from './model';

const PREVIEW_ROWS = 200;
const PREVIEW_TEXT = 20000;

/** What both panels share: a message line, progress while a call runs, and errors. */
abstract class AirlockPanel extends Widget {
  protected message = h('div', { class: 'lnds-airlock-message', 'aria-live': 'polite' });
  protected body = h('div', { class: 'lnds-airlock-body' });
  protected busy = false;

  constructor(
    protected client: AirlockClient,
    id: string,
    label: string
  ) {
    super();
    this.id = id;
    this.addClass('lnds-airlock-panel');
    this.title.label = label;
    this.title.caption = label;
    this.title.closable = true;
    this.node.tabIndex = -1;
    this.node.append(this.message, this.body);
  }

  /** Show a message: info, progress or error (errors are announced to screen readers). */
  protected say(text: string, kind: 'info' | 'progress' | 'error' = 'info'): void {
    this.message.textContent = text;
    this.message.className = `lnds-airlock-message lnds-airlock-message-${kind}`;
    this.message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  }

  /** Run one airlock call with progress shown; its errors become the panel's message. */
  protected async run<T>(progress: string, work: () => Promise<T>): Promise<T | undefined> {
    this.busy = true;
    this.node.classList.add('lnds-airlock-busy');
    this.say(progress, 'progress');
    try {
      const result = await work();
      this.say('');
      return result;
    } catch (error) {
      const text =
        error instanceof AirlockError
          ? error.message
          : `unexpected error: ${(error as Error).message ?? error}`;
      this.say(text, 'error');
      return undefined;
    } finally {
      this.busy = false;
      this.node.classList.remove('lnds-airlock-busy');
    }
  }

  abstract refresh(): Promise<void>;
}

function requestsTable(
  id: string,
  requests: IRequestSummary[],
  open: (id: string) => void,
  current: string | null,
  empty: string
): HTMLElement {
  if (!requests.length) {
    return h('p', { class: 'lnds-airlock-empty', id: `${id}-empty` }, empty);
  }
  return h(
    'table',
    { class: 'lnds-airlock-table', id },
    h('thead', {}, h('tr', {}, h('th', {}, 'Request'), h('th', {}, 'Status'), h('th', {}, ''))),
    h(
      'tbody',
      {},
      requests.map(r =>
        h(
          'tr',
          {
            'data-request': r.id,
            'data-status': r.status,
            class: r.id === current ? 'lnds-airlock-current' : undefined
          },
          h('td', {}, h('strong', {}, r.title), h('div', { class: 'lnds-airlock-dim' }, `${r.id} · ${r.project} · ${r.author}`)),
          h('td', { class: `lnds-airlock-status lnds-airlock-status-${r.status}` }, statusLabel(r.status)),
          h('td', {}, button('Open', () => open(r.id), { 'aria-label': `Open request ${r.title}` }))
        )
      )
    )
  );
}

function findingsList(file: IRequestFile): HTMLElement {
  if (!file.checks?.status) {
    return h('p', { class: 'lnds-airlock-dim lnds-airlock-findings' }, 'Automatic checks run when the request is submitted.');
  }
  const lines = findingLines(file.checks);
  if (!lines.length) {
    lines.push('no findings');
  }
  return h(
    'div',
    { class: 'lnds-airlock-findings', 'data-verdict': file.checks.status },
    h('span', { class: `lnds-airlock-verdict lnds-airlock-verdict-${file.checks.status}` }, `checks: ${file.checks.status}`),
    h('ul', {}, lines.map(line => h('li', {}, line)))
  );
}

function commentsList(detail: IRequestDetail, id: string): HTMLElement {
  if (!detail.comments.length) {
    return h('p', { class: 'lnds-airlock-empty', id }, 'No comments.');
  }
  return h(
    'ul',
    { class: 'lnds-airlock-comments', id },
    detail.comments.map(c =>
      h(
        'li',
        {},
        h('strong', {}, c.author),
        ` (round ${c.round}${c.file ? `, on ${c.file}` : ''}): `,
        h('span', { class: 'lnds-airlock-comment-text' }, c.text)
      )
    )
  );
}

/** The researcher's side: build, submit, withdraw and resubmit the project's export requests. */
export class RequestsPanel extends AirlockPanel {
  private requests: IRequestSummary[] = [];
  private current: IRequestDetail | null = null;
  private outputs: IOutputFile[] = [];

  constructor(
    client: AirlockClient,
    private project: string
  ) {
    super(client, 'lnds-airlock-requests-panel', 'Export requests');
  }

  async refresh(): Promise<void> {
    await this.run('Loading export requests…', async () => {
      const [requests, outputs] = await Promise.all([
        this.client.requests(),
        this.client.outputs(this.project)
      ]);
      this.requests = requests.filter(r => r.project === this.project);
      this.outputs = outputs;
      if (this.current) {
        this.current = await this.client.request(this.current.id);
      }
    });
    this.render();
  }

  /** Open one request of the list. */
  async open(id: string): Promise<void> {
    const detail = await this.run('Opening the request…', () => this.client.request(id));
    if (detail) {
      this.current = detail;
      this.render();
    }
  }

  /** Add a file of ~/outputs to the open editable request, or to a new draft. */
  async requestExport(name: string, kind: FileKind = 'output'): Promise<void> {
    let detail: IRequestDetail | undefined | null =
      this.current && isEditable(this.current.status) ? this.current : null;
    if (!detail) {
      detail = await this.run('Starting a new request…', () =>
        this.client.create(`Export of ${name}`, '', '')
      );
      if (!detail) {
        return;
      }
      this.current = detail;
    }
    const id = detail.id;
    const added = await this.run(`Adding ${name} (the airlock copies it on the hub side)…`, () =>
      this.client.addFile(id, name, kind)
    );
    if (added) {
      this.current = added;
      this.say(`${name} added to request ${added.id}. Describe the export, then submit.`);
    }
    await this.refresh();
  }

  private async change(progress: string, work: (id: string) => Promise<IRequestDetail>, done?: string) {
    if (!this.current) {
      return;
    }
    const id = this.current.id;
    const detail = await this.run(progress, () => work(id));
    if (detail) {
      this.current = detail;
      const requests = await this.run('Refreshing…', () => this.client.requests());
      if (requests) {
        this.requests = requests.filter(r => r.project === this.project);
      }
      this.render();
      if (done) {
        this.say(done);
      }
    }
  }

  private contextFields(editable: boolean): HTMLElement {
    const d = this.current;
    return h(
      'div',
      { class: 'lnds-airlock-context' },
      h('label', { for: 'lnds-airlock-title' }, 'What is exported (title)'),
      h('input', { id: 'lnds-airlock-title', class: 'jp-mod-styled', type: 'text', maxlength: '200', disabled: !editable }),
      h('label', { for: 'lnds-airlock-purpose' }, 'Why (context for the checkers)'),
      h('textarea', { id: 'lnds-airlock-purpose', class: 'jp-mod-styled', rows: '3', disabled: !editable }),
      h('label', { for: 'lnds-airlock-controls' }, 'Disclosure controls applied'),
      h('textarea', { id: 'lnds-airlock-controls', class: 'jp-mod-styled', rows: '2', disabled: !editable }),
      d
        ? editable && button('Save context', () => void this.saveContext(), { id: 'lnds-airlock-save' })
        : button('Create request', () => void this.createFromForm(), { id: 'lnds-airlock-create' }, true)
    );
  }

  private field(id: string): string {
    const element = this.node.querySelector(`#${id}`) as HTMLInputElement | HTMLTextAreaElement | null;
    return element?.value ?? '';
  }

  private async createFromForm(): Promise<void> {
    const title = this.field('lnds-airlock-title').trim();
    if (!title) {
      this.say('Give the request a title: what is exported.', 'error');
      return;
    }
    const detail = await this.run('Creating the request…', () =>
      this.client.create(title, this.field('lnds-airlock-purpose'), this.field('lnds-airlock-controls'))
    );
    if (detail) {
      this.current = detail;
      await this.refresh();
    }
  }

  private async saveContext(): Promise<void> {
    const title = this.field('lnds-airlock-title');
    const purpose = this.field('lnds-airlock-purpose');
    const controls = this.field('lnds-airlock-controls');
    await this.change('Saving…', id => this.client.edit(id, title, purpose, controls), 'Context saved.');
  }

  private filesList(d: IRequestDetail, editable: boolean): HTMLElement {
    if (!d.files.length) {
      return h('p', { class: 'lnds-airlock-empty', id: 'lnds-airlock-files-empty' },
        'No files yet: add one from ~/outputs below, or right-click it in the file browser and choose "Request export…".');
    }
    return h(
      'ul',
      { class: 'lnds-airlock-files', id: 'lnds-airlock-files', 'aria-label': 'Files in this request' },
      d.files.map(f => {
        const kind = h(
          'select',
          { class: 'jp-mod-styled lnds-airlock-kind', 'aria-label': `Kind of ${f.name}`, disabled: !editable,
            onchange: (e: Event) =>
              void this.change(`Changing ${f.name}…`, id =>
                this.client.addFile(id, f.name, (e.target as HTMLSelectElement).value as FileKind)) },
          h('option', { value: 'output', selected: f.kind === 'output' }, 'output: released when approved'),
          h('option', { value: 'supporting', selected: f.kind === 'supporting' }, 'supporting: reviewed, never released')
        );
        return h(
          'li',
          { class: 'lnds-airlock-file', 'data-file': f.name },
          h('div', {}, h('code', { class: 'lnds-airlock-file-name' }, f.name)),
          h('div', { class: 'lnds-airlock-dim' }, `sha256 ${f.sha256.slice(0, 12)}… · ${f.size} bytes`),
          kind,
          findingsList(f),
          editable &&
            h('div', { class: 'lnds-airlock-file-actions' },
              button('Replace', () =>
                void this.change(`Freezing the current ${f.name}…`, id => this.client.addFile(id, f.name, f.kind),
                  `${f.name} replaced with its current content; votes on it start again.`),
                { 'aria-label': `Replace ${f.name} with its current content`, class: 'lnds-airlock-replace' }),
              button('Remove', () => void this.change(`Removing ${f.name}…`, id => this.client.removeFile(id, f.name)),
                { 'aria-label': `Remove ${f.name}`, class: 'lnds-airlock-remove' }))
        );
      })
    );
  }

  private addRow(d: IRequestDetail): HTMLElement {
    const present = new Set(d.files.map(f => f.name));
    const candidates = this.outputs.filter(o => !present.has(o.name));
    if (!candidates.length) {
      return h('p', { class: 'lnds-airlock-dim', id: 'lnds-airlock-add-empty' }, 'Every file in ~/outputs is in this request.');
    }
    return h(
      'div',
      { class: 'lnds-airlock-add' },
      h('label', { for: 'lnds-airlock-add-name' }, 'Add from ~/outputs'),
      h('select', { id: 'lnds-airlock-add-name', class: 'jp-mod-styled' }, candidates.map(o => h('option', { value: o.name }, o.name))),
      h('select', { id: 'lnds-airlock-add-kind', class: 'jp-mod-styled', 'aria-label': 'Kind of the file to add' },
        h('option', { value: 'output' }, 'output'), h('option', { value: 'supporting' }, 'supporting')),
      button('Add file', () => {
        const name = this.field('lnds-airlock-add-name');
        const kind = this.field('lnds-airlock-add-kind') as FileKind;
        void this.change(`Adding ${name} (the airlock copies it on the hub side)…`, id => this.client.addFile(id, name, kind));
      }, { id: 'lnds-airlock-add' })
    );
  }

  render(): void {
    const d = this.current;
    const editable = d ? isEditable(d.status) : true;
    const parts: (HTMLElement | false | null)[] = [
      h('h2', {}, `Export requests · ${this.project}`),
      h('p', { class: 'lnds-airlock-dim' }, 'Results leave the workspace only through a request that two output checkers approve. Files are copied from ~/outputs on the hub side when added; later edits change nothing until you replace them.'),
      h('h3', {}, d ? `Request ${d.id}` : 'New request'),
      d && h('p', {}, 'Status: ', h('strong', { id: 'lnds-airlock-status', 'data-status': d.status, 'data-round': String(d.round) }, statusLabel(d.status)),
        d.round ? ` · round ${d.round}` : ''),
      this.contextFields(editable)
    ];
    if (d) {
      parts.push(
        h('h4', {}, 'Files'),
        this.filesList(d, editable),
        editable && this.addRow(d),
        h(
          'div',
          { class: 'lnds-airlock-actions' },
          d.can.submit &&
            button(d.status === 'returned' ? 'Resubmit' : 'Submit', () =>
              void this.change('Submitting: running the automatic disclosure checks…', id => this.client.act(id, 'submit'),
                'Submitted: two output checkers will review it.'), { id: 'lnds-airlock-submit' }, true),
          d.can.withdraw &&
            button('Withdraw', () => void this.change('Withdrawing…', id => this.client.act(id, 'withdraw'), 'Withdrawn.'),
              { id: 'lnds-airlock-withdraw' }),
          button('New request', () => {
            this.current = null;
            this.render();
          }, { id: 'lnds-airlock-new' })
        ),
        d.status === 'released' &&
          h('p', { id: 'lnds-airlock-released' }, 'Released: download the bundle from the hub\'s airlock pages (outside the workspace).'),
        commentsVisibleToRequester(d.status)
          ? h('div', {}, h('h4', {}, 'Checkers\' comments'), commentsList(d, 'lnds-airlock-comments'))
          : h('p', { class: 'lnds-airlock-dim' }, 'Checkers\' comments appear here when the request is returned or decided.')
      );
    }
    parts.push(
      h('h3', {}, 'This project\'s requests'),
      requestsTable('lnds-airlock-requests', this.requests, id => void this.open(id), d?.id ?? null,
        'No export requests yet: put a result in ~/outputs, right-click it and choose "Request export…".'),
      button('Refresh', () => void this.refresh(), { id: 'lnds-airlock-refresh' })
    );
    this.body.replaceChildren(...(parts.filter(Boolean) as HTMLElement[]));
    if (d) {
      (this.node.querySelector('#lnds-airlock-title') as HTMLInputElement).value = d.title;
      (this.node.querySelector('#lnds-airlock-purpose') as HTMLTextAreaElement).value = d.purpose;
      (this.node.querySelector('#lnds-airlock-controls') as HTMLTextAreaElement).value = d.disclosure_controls;
    }
  }
}

/** The output checker's side: the queue, each file with its preview and findings, votes, comments. */
export class ReviewPanel extends AirlockPanel {
  private queue: IRequestSummary[] = [];
  private current: IRequestDetail | null = null;

  constructor(client: AirlockClient) {
    super(client, 'lnds-airlock-review-panel', 'Output review');
  }

  async refresh(): Promise<void> {
    await this.run('Loading the review queue…', async () => {
      this.queue = await this.client.requests();
      if (this.current) {
        this.current = await this.client.request(this.current.id);
      }
    });
    this.render();
  }

  async open(id: string): Promise<void> {
    const detail = await this.run('Opening the request…', () => this.client.request(id));
    if (detail) {
      this.current = detail;
      this.render();
    }
  }

  private async change(progress: string, work: (id: string) => Promise<IRequestDetail>, done?: string) {
    if (!this.current) {
      return;
    }
    const id = this.current.id;
    const detail = await this.run(progress, () => work(id));
    if (detail) {
      this.current = detail;
      const queue = await this.run('Refreshing…', () => this.client.requests());
      this.queue = queue ?? this.queue;
      this.render();
      if (done) {
        this.say(done);
      }
    }
  }

  private fileSection(d: IRequestDetail, f: IRequestFile, index: number): HTMLElement {
    const votes = Object.entries(f.votes);
    const canVote = d.can.review && f.kind === 'output';
    const mine = f.votes[this.user ?? ''];
    const group = `lnds-review-vote-${index}`;
    const preview = h('div', { class: 'lnds-review-preview', 'aria-label': `Preview of ${f.name}` },
      d.can.read_files ? h('p', { class: 'lnds-airlock-dim' }, 'Loading preview…') : h('p', { class: 'lnds-airlock-dim' }, 'No preview: you may not read this file.'));
    if (d.can.read_files) {
      void this.loadPreview(d.id, f, preview);
    }
    return h(
      'section',
      { class: 'lnds-review-file', 'data-file': f.name, 'aria-label': `File ${f.name}` },
      h('h4', {}, h('code', {}, f.name), ` · ${f.kind}`),
      h('p', { class: 'lnds-airlock-dim' }, `sha256 ${f.sha256.slice(0, 16)}… · ${f.size} bytes · added by ${f.added_by}`),
      findingsList(f),
      preview,
      votes.length
        ? h('p', { class: 'lnds-review-votes' }, 'Votes: ', votes.map(([who, v]) => `${who}: ${VOTES.find(x => x.value === v)?.label ?? v}`).join(', '))
        : h('p', { class: 'lnds-review-votes-hidden lnds-airlock-dim' }, 'Other checkers\' votes stay hidden until both reviews are in.'),
      canVote &&
        h(
          'fieldset',
          { class: 'lnds-review-vote' },
          h('legend', {}, 'Your vote'),
          VOTES.map(v =>
            h('label', {},
              h('input', { type: 'radio', name: group, value: v.value, checked: mine === v.value, 'data-vote': v.value }),
              ` ${v.label} `)
          ),
          button('Save vote', () => {
            const chosen = this.node.querySelector(`input[name="${group}"]:checked`) as HTMLInputElement | null;
            if (!chosen) {
              this.say(`Choose a vote for ${f.name} first.`, 'error');
              return;
            }
            void this.change(`Saving your vote on ${f.name}…`, id => this.client.vote(id, f.name, chosen.value as VoteValue),
              `Vote on ${f.name} saved.`);
          }, { class: 'lnds-review-vote-save', 'aria-label': `Save vote on ${f.name}` }, true)
        ),
      d.can.comment &&
        h(
          'div',
          { class: 'lnds-review-comment' },
          h('label', { for: `lnds-review-comment-${index}` }, `Comment on ${f.name}`),
          h('textarea', { id: `lnds-review-comment-${index}`, class: 'jp-mod-styled', rows: '2' }),
          button('Comment', () => {
            const text = (this.node.querySelector(`#lnds-review-comment-${index}`) as HTMLTextAreaElement).value;
            if (!text.trim()) {
              this.say('Write the comment first.', 'error');
              return;
            }
            void this.change('Saving the comment…', id => this.client.comment(id, text, f.name), 'Comment saved.');
          }, { class: 'lnds-review-comment-save', 'aria-label': `Save comment on ${f.name}` })
        )
    );
  }

  private user: string | null = null;

  private async loadPreview(id: string, f: IRequestFile, into: HTMLElement): Promise<void> {
    let blob: Blob;
    try {
      blob = await this.client.fileContent(id, f.name);
    } catch (error) {
      into.replaceChildren(h('p', { class: 'lnds-airlock-message-error', role: 'alert' },
        `Preview unavailable: ${(error as Error).message}`));
      return;
    }
    const kind = previewKind(f.name);
    if (kind === 'image') {
      into.replaceChildren(h('img', { src: URL.createObjectURL(blob), alt: `Image output ${f.name}`, class: 'lnds-review-image' }));
      return;
    }
    const text = await blob.text();
    const separator = tableSeparator(f.name, text);
    if (separator === null) {
      into.replaceChildren(h('pre', { class: 'lnds-review-text' }, text.slice(0, PREVIEW_TEXT)));
      return;
    }
    const [header, ...rows] = parseDelimited(text, separator);
    const flagged = flaggedCells(f.checks);
    into.replaceChildren(
      h(
        'table',
        { class: 'lnds-airlock-table lnds-review-table' },
        h('thead', {}, h('tr', {}, (header ?? []).map(c => h('th', {}, c)))),
        h('tbody', {}, rows.slice(0, PREVIEW_ROWS).map((row, r) =>
          h('tr', {}, row.map((value, c) => {
            const rules = flagged.get(`${r},${c}`);
            return rules
              ? h('td', { class: 'lnds-airlock-flagged', title: `flagged: ${rules.join(', ')}` }, value,
                  h('span', { class: 'lnds-airlock-rule' }, rules.join(', ')))
              : h('td', {}, value);
          }))))
      ),
      rows.length > PREVIEW_ROWS ? h('p', { class: 'lnds-airlock-dim' }, `First ${PREVIEW_ROWS} of ${rows.length} rows.`) : h('span', {})
    );
  }

  render(): void {
    const d = this.current;
    const toReview = this.queue.filter(r => r.to_review);
    const others = this.queue.filter(r => !r.to_review);
    const parts: (HTMLElement | false | null | undefined)[] = [
      h('h2', {}, 'Output review'),
      h('h3', {}, 'To review'),
      requestsTable('lnds-review-queue', toReview, id => void this.open(id), d?.id ?? null,
        'Nothing to review: requests of the projects you check appear here when submitted.'),
      others.length > 0 && h('h3', {}, 'Other requests you can see'),
      others.length > 0 && requestsTable('lnds-review-others', others, id => void this.open(id), d?.id ?? null, ''),
      button('Refresh', () => void this.refresh(), { id: 'lnds-review-refresh' })
    ];
    if (d) {
      const actions: [string, string, string][] = [
        ['submit_review', 'review', 'Submit review'],
        ['return', 'return', 'Return to requester'],
        ['reject', 'reject', 'Reject'],
        ['approve', 'approve', 'Approve request'],
        ['release', 'release', 'Release']
      ];
      parts.push(
        h(
          'div',
          { id: 'lnds-review-detail', 'data-request': d.id, 'data-status': d.status, 'data-round': String(d.round) },
          h('h3', {}, d.title),
          h('p', {}, 'Status: ', h('strong', { id: 'lnds-review-status', 'data-status': d.status }, statusLabel(d.status)),
            ` · ${d.id} · project ${d.project} · by ${d.author} · round ${d.round} · reviews in: ${d.review_count}`),
          h('h4', {}, 'Context'),
          h('p', { id: 'lnds-review-purpose' }, d.purpose || '(no purpose given)'),
          h('p', { id: 'lnds-review-controls' }, h('em', {}, 'Disclosure controls: '), d.disclosure_controls || '(none stated)'),
          d.files.length ? d.files.map((f, i) => this.fileSection(d, f, i)) : h('p', { class: 'lnds-airlock-empty' }, 'This request has no files.'),
          h('h4', {}, 'Comments'),
          commentsList(d, 'lnds-review-comments'),
          h('div', { class: 'lnds-airlock-actions' },
            actions.filter(([flag]) => d.can[flag]).map(([, action, label]) =>
              button(label, () => void this.change(`${label}…`, id => this.client.act(id, action), `${label}: done.`),
                { id: `lnds-review-action-${action}` }, action === 'approve' || action === 'release' || action === 'review')))
        )
      );
    }
    this.body.replaceChildren(...(parts.filter(Boolean) as HTMLElement[]));
  }

  /** The checker's name, to preselect their own votes. */
  setUser(name: string): void {
    this.user = name;
  }
}
