/**
 * How the panel shows what it pinned: the log key and where it came from (a visible warning
 * when it was trusted on first use), a red banner when the server showed something the pin
 * rules out, and the witnesses' cosignatures on the checkpoint.
 */
import { el, short } from './dom';
import type { IPin } from './trust';
import type { ICosignatureCheck } from './verify';

const SETTING = 'Settings › WebAssembly audit trail › Log verifier key';

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

/** The pinned key and its source; the alarm banner (with its evidence) when there is one. */
export function renderPin(pin: IPin, onForget: () => void): HTMLElement[] {
  const tofu = pin.source === 'tofu';
  const key = el(
    'div',
    { class: `jp-WasmSandbox-trust jp-mod-${tofu ? 'warn' : 'ok'}`, 'data-source': pin.source },
    tofu ? '⚠ Log key trusted on first use' : '✓ Log key pinned from your settings',
    ` (since ${when(pin.since)}): `,
    short(pin.key, 28),
    tofu
      ? el('div', { class: 'jp-WasmSandbox-note' },
          'This browser took the server\'s word for the key the first time it asked. To pin it, ' +
          `check it out of band (wasm-sandbox keys) and put it in ${SETTING}.`)
      : null
  );
  return pin.alarm ? [renderAlarm(pin, onForget), key] : [key];
}

function renderAlarm(pin: IPin, onForget: () => void): HTMLElement {
  const alarm = pin.alarm!;
  const forget = el('button', { class: 'jp-Button jp-mod-styled jp-WasmSandbox-forget' },
    'Forget this server');
  forget.addEventListener('click', onForget);
  return el(
    'div',
    { class: 'jp-WasmSandbox-alarm', role: 'alert', 'data-alarm': alarm.kind },
    el('strong', {}, '✗ Do not trust this server\'s log: '),
    alarm.message,
    ` (${when(alarm.at)}). Nothing it shows is verified until you forget it.`,
    el('details', {},
      el('summary', {}, 'evidence (keep it: signed by the log\'s key)'),
      ...alarm.evidence.map(text => el('pre', {}, text))),
    forget
  );
}

/** One line per witness: its name, key id and what the browser could check. */
export function renderCosignatures(checks: ICosignatureCheck[]): HTMLElement {
  if (checks.length === 0) {
    return el('div', { class: 'jp-WasmSandbox-cosignatures jp-WasmSandbox-note' },
      'no witness cosignatures (and no witness keys in the settings)');
  }
  const mark = { valid: '✓', invalid: '✗', missing: '✗', unchecked: '–' };
  return el(
    'ul',
    { class: 'jp-WasmSandbox-cosignatures' },
    ...checks.map(c =>
      el('li', { 'data-status': c.status, 'data-witness': c.name },
        `${mark[c.status]} witness ${c.name}`, c.keyId ? ` (key ${c.keyId})` : '', ': ',
        c.status === 'valid' && c.time !== null ? `cosigned ${when(c.time * 1000)}` : c.detail)
    )
  );
}
