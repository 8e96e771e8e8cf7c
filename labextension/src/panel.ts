/**
 * The audit-trail side panel: the latest signed checkpoint, the log's records newest first
 * (paged), and one selected record with its inclusion proof and a Verify action.
 *
 * It polls `GET checkpoint` every few seconds while it is visible and reloads the list when
 * the tree grows; `refreshSoon()` lets the plugin refresh it right after a `%%wasm` cell ran.
 * Every checkpoint it sees goes through the pin (`trust.ts`): signed by the pinned log key and
 * consistent with the one seen before, or the panel raises an alarm and verifies nothing.
 */
import { Widget } from '@lumino/widgets';

import { ApiClient } from './api';
import { Child, el, short } from './dom';
import { IPin, Trust } from './trust';
import { renderCosignatures, renderPin } from './trustview';
import type { ICheckpoint, IExecutionDetail, IListedRecord, IRecord } from './types';
import { browserChecks, checkCosignatures, leafHash, parseNote, parseVerifierKey, passed } from './verify';

/** What the user configures (the `wasm-sandbox:audit` settings). */
export interface IAuditSettings {
  /** The log's C2SP verifier key; empty: trusted on first use. */
  logVerifierKey: string;
  /** Witnesses' C2SP verifier keys (type 0x04) whose cosignatures are checked. */
  witnesses: string[];
}

const PAGE_SIZE = 15;
const POLL_MS = 3000;

function formatTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
  );
}

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** A duration in the unit a person reads (the same rule as the card's `duration_text`). */
export function formatDuration(us: number): string {
  const ms = us / 1000;
  if (ms < 1) {
    return `${Math.round(us)} µs`;
  }
  if (ms < 1000) {
    return ms < 100 ? `${Number(ms.toPrecision(3))} ms` : `${Math.round(ms)} ms`;
  }
  if (ms < 60000) {
    return `${Number((ms / 1000).toPrecision(3))} s`;
  }
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/** What the public record says about what ran: the function and its arguments are sealed. */
function whatRan(record: IRecord): string {
  return `${formatCount(record.program.size ?? 0)} B program${ranBy(record)}`;
}

/** The face a run came through, when its record names one: ` · via mcp (agent, unauthenticated)`. */
function ranBy(record: IRecord): string {
  const f = record.face;
  if (!f) {
    return '';
  }
  const who = f.authenticated ? `as ${f.user ?? 'an authenticated user'}` : 'unauthenticated';
  return ` · via ${f.name} (${f.client ? `${f.client}, ` : ''}${who})`;
}

const SEALED_CALL = 'the function and its arguments are sealed (in the input)';
const RUN_COMMITMENT = 'run commitment: the log leaf hash, SHA-256(0x00 ‖ canonical record)';

function statusBadge(status: string): HTMLElement {
  const kind = status === 'ok' || status === 'exit' ? 'ok' : 'bad';
  return el('span', { class: `jp-WasmSandbox-status jp-mod-${kind}` }, status);
}

export class AuditPanel extends Widget {
  constructor(
    private readonly api = new ApiClient(),
    private readonly trust = new Trust(api)
  ) {
    super();
    this.id = 'wasm-sandbox-audit';
    this.addClass('jp-WasmSandbox-audit');
    this.title.caption = 'WebAssembly audit trail';
    this.node.append(
      el(
        'div',
        { class: 'jp-WasmSandbox-toolbar' },
        el('h2', {}, 'WebAssembly audit trail'),
        this.button('Refresh', 'jp-WasmSandbox-refresh', () => this.refresh(true))
      ),
      this.pinNode,
      this.checkpointNode,
      this.messageNode,
      el(
        'table',
        { class: 'jp-WasmSandbox-records' },
        el(
          'colgroup',
          {},
          ...['leaf', 'run', 'fuel'].map(c => el('col', { class: `jp-WasmSandbox-col-${c}` }))
        ),
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', { title: 'leaf index in the log' }, '#'),
            el('th', { title: `time, status and program size; ${SEALED_CALL}` }, 'run'),
            el('th', { class: 'jp-WasmSandbox-num', title: `fuel used; ${RUN_COMMITMENT}` }, 'fuel')
          )
        ),
        this.rowsNode
      ),
      el('div', { class: 'jp-WasmSandbox-pager' }, this.newerButton, this.pageNode, this.olderButton),
      this.detailNode
    );
  }

  /** Take the user's settings (the pinned key, the witnesses) and check again. */
  configure(settings: IAuditSettings): Promise<void> {
    this.trust.configuredKey = settings.logVerifierKey;
    this._witnesses = settings.witnesses;
    return this.refresh(true);
  }

  /** Reload the checkpoint, and the list when the log grew (or when `force`). */
  async refresh(force = false): Promise<void> {
    if (this._refreshing) {
      this._again = true;
      return this._refreshing;
    }
    this._refreshing = this.doRefresh(force).finally(() => {
      this._refreshing = null;
      if (this._again) {
        this._again = false;
        void this.refresh(true);
      }
    });
    return this._refreshing;
  }

  /** Refresh shortly (after a kernel ran a `%%wasm` cell, the record lands a moment later). */
  refreshSoon(): void {
    for (const delay of [300, 1500]) {
      window.setTimeout(() => {
        if (!this.isDisposed) {
          void this.refresh();
        }
      }, delay);
    }
  }

  /** Show the newest record and verify it. */
  async verifyLatest(): Promise<void> {
    this._pageEnd = null;
    await this.refresh(true);
    const newest = this._items[0];
    if (!newest) {
      this.showMessage('No runs logged yet: run a %%wasm cell first.');
      return;
    }
    await this.select(newest.id);
    await this.verify();
  }

  /** Show one record with its inclusion proof. */
  async select(id: string): Promise<void> {
    this._selected = id;
    this.markSelected();
    try {
      await this.renderDetail(await this.api.execution(id));
    } catch (error) {
      this.showMessage(`Cannot read record ${id.slice(0, 12)}: ${String(error)}`);
    }
  }

  /** Ask the server to verify the selected record again, and check it in the browser too. */
  async verify(): Promise<void> {
    const id = this._selected;
    if (!id) {
      return;
    }
    const verdict = this.detailNode.querySelector('.jp-WasmSandbox-checks');
    verdict?.replaceChildren(el('div', { class: 'jp-WasmSandbox-verdict' }, 'Verifying…'));
    try {
      const detail = await this.api.execution(id);
      const pin = await this.trust.observe(detail.checkpoint);
      this.renderPin(pin);
      const mine = await browserChecks(detail, pin.key);
      mine['browser: log consistency'] = pin.alarm
        ? `failed: ${pin.alarm.message}`
        : `ok: consistent with every checkpoint this browser saw (now ${pin.seen?.size})`;
      await this.renderDetail(detail, { ...detail.verification.checks, ...mine });
    } catch (error) {
      verdict?.replaceChildren(
        el('div', { class: 'jp-WasmSandbox-verdict', 'data-verified': 'false' }, String(error))
      );
    }
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  protected onAfterAttach(): void {
    window.clearInterval(this._timer);
    this._timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, POLL_MS);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._timer);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private async doRefresh(force: boolean): Promise<void> {
    let checkpoint: ICheckpoint;
    try {
      checkpoint = await this.api.checkpoint();
    } catch (error) {
      this.showMessage(String(error));
      return;
    }
    let pin: IPin;
    try {
      pin = await this.trust.observe(checkpoint.checkpoint);
    } catch (error) {
      this.showMessage(`Cannot check the checkpoint: ${String(error)}`);
      return;
    }
    this.showMessage('');
    this.renderPin(pin);
    await this.renderCheckpoint(checkpoint, pin);
    if (force || checkpoint.tree_size !== this._treeSize) {
      this._treeSize = checkpoint.tree_size;
      await this.loadPage();
    }
  }

  private async loadPage(): Promise<void> {
    const end = Math.min(this._pageEnd ?? this._treeSize, this._treeSize);
    const count = Math.min(PAGE_SIZE, end);
    let items: IListedRecord[] = [];
    if (count > 0) {
      try {
        items = (await this.api.executions(count, end - count - 1)).items;
      } catch (error) {
        this.showMessage(String(error));
        return;
      }
    }
    this._items = items.reverse();
    const hashes = await Promise.all(this._items.map(r => leafHash(r).catch(() => '')));
    this.rowsNode.replaceChildren(...this._items.map((r, i) => this.row(r, hashes[i])));
    if (this._items.length === 0) {
      this.rowsNode.append(
        el('tr', {}, el('td', { colspan: '3', class: 'jp-WasmSandbox-empty' }, 'No runs logged yet.'))
      );
    }
    const first = end - count;
    const shown = count > 1 ? `#${first}–#${end - 1}` : `#${first}`;
    this.pageNode.textContent = count ? `${shown} of ${this._treeSize}` : '';
    (this.newerButton as HTMLButtonElement).disabled = end >= this._treeSize;
    (this.olderButton as HTMLButtonElement).disabled = first <= 0;
    this.markSelected();
  }

  private row(record: IListedRecord, commitment: string): HTMLElement {
    const o = record.outcome;
    const tr = el(
      'tr',
      {
        class: 'jp-WasmSandbox-record',
        'data-id': record.id,
        'data-leaf-index': String(record.leaf_index),
        'data-commitment': commitment,
        title: `record ${record.id}`
      },
      el('td', {}, String(record.leaf_index)),
      el(
        'td',
        {},
        el('div', {},
          el('span', { title: formatTime(record.time) }, formatTime(record.time).slice(11)), ' ',
          el('span', { title: o.trap ?? o.status }, statusBadge(o.status))),
        el('div', { class: 'jp-WasmSandbox-ran', title: SEALED_CALL }, whatRan(record))
      ),
      el(
        'td',
        { class: 'jp-WasmSandbox-num' },
        el('div', { class: 'jp-WasmSandbox-fuel', title: `${formatCount(o.fuel_used)} fuel` },
          formatCount(o.fuel_used)),
        el('div', { title: RUN_COMMITMENT }, commitment ? short(commitment, 8) : '—')
      )
    );
    tr.addEventListener('click', () => void this.select(record.id));
    return tr;
  }

  private renderPin(pin: IPin): void {
    this.pinNode.replaceChildren(...renderPin(pin, () => {
      this.trust.forget();
      void this.refresh(true);
    }));
  }

  private async renderCheckpoint(cp: ICheckpoint, pin: IPin): Promise<void> {
    const trusted = !pin.alarm;
    const logKeyId = await parseVerifierKey(pin.key).then(k => k.keyId, () => null);
    const cosigned = `${cp.checkpoint}${cp.cosignatures.map(line => `${line}\n`).join('')}`;
    const witnesses = await checkCosignatures(parseNote(cosigned), logKeyId, this._witnesses)
      .catch(() => []);
    this.checkpointNode.replaceChildren(
      el('h3', {}, trusted ? 'Latest signed checkpoint' : 'Latest checkpoint (NOT trusted)'),
      el('div', { class: `jp-WasmSandbox-pinned jp-mod-${trusted ? 'ok' : 'bad'}`,
        'data-trusted': String(trusted) },
        trusted
          ? '✓ signed by the pinned log key, and consistent with every checkpoint seen before'
          : '✗ see the alarm above'),
      el(
        'div',
        {},
        'tree size ',
        el('strong', { class: 'jp-WasmSandbox-tree-size' }, String(cp.tree_size)),
        ' · root ',
        short(cp.root, 16)
      ),
      el('div', { class: 'jp-WasmSandbox-origin' }, cp.origin),
      renderCosignatures(witnesses),
      el('details', {}, el('summary', {}, 'signed note'), el('pre', {}, cosigned))
    );
  }

  private async renderDetail(d: IExecutionDetail, checks?: Record<string, string>): Promise<void> {
    const r = d.record;
    const o = r.outcome;
    const p = d.inclusion_proof;
    const leaf = await leafHash(r).catch(() => '');
    const facts: [string, Child][] = [
      ['record id', el('code', {}, r.id)],
      ['time', formatTime(r.time)],
      ['status', el('span', {}, statusBadge(o.status), o.trap ? ` ${o.trap}` : '',
        o.exit_code !== null ? ` (exit ${o.exit_code})` : '')],
      ['fuel', `${formatCount(o.fuel_used)} of ${formatCount(r.limits.fuel ?? 0)}`],
      ['memory', `${formatCount(o.memory_bytes)} bytes`],
      ['duration', formatDuration(o.duration_us)],
      ['ran', el('span', {}, whatRan(r), el('div', { class: 'jp-WasmSandbox-note' }, SEALED_CALL))],
      ['run commitment', leaf ? el('span', {}, short(leaf, 16), ' (log leaf hash)') : '—'],
      ['program commitment', short(r.program.commitment, 16)],
      ['program ciphertext sha256', short(r.program.ct_sha256, 16)],
      ['input commitment', short(r.input.commitment, 16)],
      ['result commitment', short(r.result.commitment, 16)],
      ['sealed to key', short(r.recipient, 16)]
    ];
    this.detailNode.replaceChildren(
      el('h3', {}, `Record #${d.leaf_index}`),
      el('table', { class: 'jp-WasmSandbox-facts' },
        ...facts.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v)))),
      el('details', {}, el('summary', {}, 'canonical record'),
        el('pre', {}, JSON.stringify(r, null, 1))),
      el('h3', {}, 'Inclusion proof'),
      el('div', { class: 'jp-WasmSandbox-proof' },
        `leaf ${p.leaf_index} of ${p.tree_size} · root `, short(p.root, 16),
        el('ol', { start: '1' }, ...p.hashes.map(h => el('li', {}, short(h, 16)))),
        p.hashes.length ? null : el('div', {}, '(no hashes: the record is the whole tree)')),
      this.button('Verify', 'jp-WasmSandbox-verify', () => this.verify()),
      el('div', { class: 'jp-WasmSandbox-checks' }, checks ? this.renderChecks(d, checks) : null)
    );
  }

  private renderChecks(d: IExecutionDetail, checks: Record<string, string>): HTMLElement {
    const ok = d.verification.verified && Object.values(checks).every(passed);
    const rows = Object.entries(checks).map(([name, result]) => {
      const mark = result.startsWith('skipped') ? '–' : passed(result) ? '✓' : '✗';
      const kind = mark === '✓' ? 'ok' : mark === '✗' ? 'bad' : 'skip';
      return el('li', { class: `jp-mod-${kind}`, 'data-check': name },
        el('span', { class: 'jp-WasmSandbox-mark' }, mark), ` ${name}: `, result);
    });
    return el('div', {},
      el('div', { class: `jp-WasmSandbox-verdict jp-mod-${ok ? 'ok' : 'bad'}`,
        'data-verified': String(ok) },
        ok ? `✓ verified against checkpoint of size ${d.verification.tree_size}` : '✗ NOT verified'),
      el('ul', {}, ...rows));
  }

  private markSelected(): void {
    for (const row of Array.from(this.rowsNode.children)) {
      row.classList.toggle('jp-mod-selected', (row as HTMLElement).dataset.id === this._selected);
    }
  }

  private showMessage(text: string): void {
    this.messageNode.textContent = text;
    this.messageNode.hidden = !text;
  }

  private button(label: string, cls: string, onClick: () => unknown): HTMLElement {
    const b = el('button', { class: `jp-Button jp-mod-styled jp-mod-accept ${cls}` }, label);
    b.addEventListener('click', () => void onClick());
    return b;
  }

  private readonly pinNode = el('section', { class: 'jp-WasmSandbox-pin' });
  private readonly checkpointNode = el('section', { class: 'jp-WasmSandbox-checkpoint' });
  private readonly messageNode = el('div', { class: 'jp-WasmSandbox-message', hidden: '' });
  private readonly rowsNode = el('tbody');
  private readonly pageNode = el('span', { class: 'jp-WasmSandbox-page' });
  private readonly newerButton = this.button('‹ Newer', 'jp-WasmSandbox-newer', () => {
    const end = (this._pageEnd ?? this._treeSize) + PAGE_SIZE;
    this._pageEnd = end >= this._treeSize ? null : end;
    return this.loadPage();
  });
  private readonly olderButton = this.button('Older ›', 'jp-WasmSandbox-older', () => {
    this._pageEnd = Math.max(PAGE_SIZE, (this._pageEnd ?? this._treeSize) - PAGE_SIZE);
    return this.loadPage();
  });
  private readonly detailNode = el('section', { class: 'jp-WasmSandbox-detail' });
  private _items: IListedRecord[] = [];
  private _treeSize = -1;
  private _pageEnd: number | null = null;
  private _selected: string | null = null;
  private _witnesses: string[] = [];
  private _refreshing: Promise<void> | null = null;
  private _again = false;
  private _timer = 0;
}
