/**
 * Highlighting of `%%wasm` cells: WebAssembly text by default, C with `--lang c`; a cell
 * with `--lang python` keeps the notebook's Python highlighting.
 *
 * The cell's own language (Python) stays configured by JupyterLab; a compartment wrapped in
 * `Prec.highest` adds the cell magic's language on top, and the highest-precedence language
 * wins. A transaction extender reconfigures the compartment in the same transaction that
 * changes the first line (no flicker while typing); a view plugin covers editors that are
 * created with `%%wasm` already in them (notebooks opened from disk) and languages that
 * finish loading after the editor exists.
 */
import {
  Compartment,
  EditorState,
  Extension,
  Prec,
  StateEffect,
  StateField,
  Text,
  Transaction
} from '@codemirror/state';
import { EditorView, ViewPlugin, ViewUpdate } from '@codemirror/view';
import {
  EditorExtensionRegistry,
  IEditorExtensionFactory,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';

/** The language a cell's magic asks for; `null` when the cell is not a `%%wasm` cell. */
export type WasmMode = 'wat' | 'c' | null;

/** The JupyterLab language registry names of each mode. */
const LANGUAGE_NAMES: Record<'wat' | 'c', string> = { wat: 'WebAssembly', c: 'C' };

/**
 * The mode of a cell from its first line: `%%wasm` (WAT), `%%wasm --lang c` (C), `null`
 * for `%%wasm --lang python` (the cell is Python already).
 *
 * @example wasmMode('%%wasm --lang=c --fuel 1e6') === 'c'
 */
export function wasmMode(firstLine: string): WasmMode {
  const match = /^%%wasm(?:\s+(.*))?$/.exec(firstLine.trimEnd());
  if (!match) {
    return null;
  }
  const words = (match[1] ?? '').split(/\s+/);
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const lang = word === '--lang' ? words[i + 1] : /^--lang=(.*)$/.exec(word)?.[1];
    if (lang !== undefined) {
      const name = lang.replace(/['"]/g, '').toLowerCase();
      if (name === 'python') {
        return null; // a Python cell keeps the notebook's own Python highlighting
      }
      return name === 'c' ? 'c' : 'wat';
    }
  }
  return 'wat';
}

function modeOf(doc: Text): WasmMode {
  return wasmMode(doc.line(1).text);
}

/** Loads the two languages once and hands out their (synchronous) extensions. */
export class WasmLanguages {
  constructor(registry: IEditorLanguageRegistry) {
    const load = async (mode: 'wat' | 'c') => {
      const language = await registry.getLanguage(LANGUAGE_NAMES[mode]);
      if (language?.support) {
        this._support[mode] = language.support;
      } else {
        console.warn(`wasm-sandbox: JupyterLab has no ${LANGUAGE_NAMES[mode]} language`);
      }
    };
    this.ready = Promise.all([load('wat'), load('c')]).then(
      () => undefined,
      error => console.warn('wasm-sandbox: cannot load the cell languages', error)
    );
  }

  /** Resolves when both languages are loaded (or failed to). */
  readonly ready: Promise<void>;

  /** The extension of a mode, `undefined` while it is still loading. */
  support(mode: WasmMode): Extension | undefined {
    return mode === null ? [] : this._support[mode];
  }

  private _support: Partial<Record<'wat' | 'c', Extension>> = {};
}

/** Which mode the compartment holds now (so a change is seen without comparing extensions). */
const setMode = StateEffect.define<WasmMode>();
const appliedMode = StateField.define<WasmMode>({
  create: () => null,
  update(value, tr) {
    for (const effect of tr.effects) {
      if (effect.is(setMode)) {
        value = effect.value;
      }
    }
    return value;
  }
});

/** The extension for one cell editor. */
export function wasmCellExtension(languages: WasmLanguages): Extension {
  const compartment = new Compartment();

  // The effects that bring `state`'s compartment to `mode`, or null when nothing to do or the
  // language has not loaded yet (the view plugin retries then).
  const reconfigure = (mode: WasmMode, current: WasmMode) => {
    const support = languages.support(mode);
    if (mode === current || support === undefined) {
      return null;
    }
    return [setMode.of(mode), compartment.reconfigure(support)];
  };

  const extender = EditorState.transactionExtender.of((tr: Transaction) => {
    if (!tr.docChanged) {
      return null;
    }
    const effects = reconfigure(modeOf(tr.newDoc), tr.startState.field(appliedMode));
    return effects ? { effects } : null;
  });

  const catchUp = ViewPlugin.fromClass(
    class {
      constructor(view: EditorView) {
        this.sync(view);
      }

      update(update: ViewUpdate): void {
        if (update.docChanged) {
          this.sync(update.view);
        }
      }

      destroy(): void {
        this.destroyed = true;
      }

      // Dispatching inside a view update is not allowed: wait for the languages (or a tick).
      private sync(view: EditorView): void {
        const wanted = modeOf(view.state.doc);
        if (wanted === view.state.field(appliedMode)) {
          return;
        }
        void languages.ready.then(() => {
          if (this.destroyed) {
            return;
          }
          const state = view.state;
          const effects = reconfigure(modeOf(state.doc), state.field(appliedMode));
          if (effects) {
            view.dispatch({ effects });
          }
        });
      }

      private destroyed = false;
    }
  );

  return [appliedMode, Prec.highest(compartment.of([])), extender, catchUp];
}

/** The editor extension factory: code cells only (not markdown or raw cells). */
export function wasmCellExtensionFactory(
  languages: WasmLanguages
): IEditorExtensionFactory<undefined> {
  return {
    name: 'wasm-sandbox:wasm-cell-language',
    factory: options => {
      // Notebook and console cell editors get their cell model, which has a `type`.
      if ((options.model as { type?: string }).type !== 'code') {
        return null;
      }
      return EditorExtensionRegistry.createImmutableExtension(wasmCellExtension(languages));
    }
  };
}
