/**
 * wasm-sandbox for JupyterLab: `%%wasm` cells highlighted as WebAssembly text (or C), and an
 * audit-trail side panel over the server extension's REST API, with palette commands.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { WasmLanguages, wasmCellExtensionFactory } from './highlight';
import { AuditPanel, IAuditSettings } from './panel';

export namespace CommandIDs {
  export const openPanel = 'wasm-sandbox:open-audit-panel';
  export const verifyLatest = 'wasm-sandbox:verify-latest';
  export const insertExample = 'wasm-sandbox:insert-example';
  export const newNotebook = 'wasm-sandbox:new-notebook';
}

const LOAD_CELL = '%load_ext wasm_sandbox';
const EXAMPLE_CELL = `%%wasm --invoke add 2 3
(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add))`;

const wasmIcon = new LabIcon({
  name: 'wasm-sandbox:audit',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" ' +
    'fill="#616161" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3zm-1 14.2-3.6-3.6 ' +
    '1.4-1.4 2.2 2.2 4.9-4.9 1.4 1.4-6.3 6.3z"/></svg>'
});

/** The WebAssembly logo's shape: a notch on top, "WA" inside (the launcher tile). */
const notebookIcon = new LabIcon({
  name: 'wasm-sandbox:notebook',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path fill="#654ff0" ' +
    'd="M2 2h7a3 3 0 0 0 6 0h7v20H2z"/><text x="12" y="19" fill="#fff" font-size="8.5" ' +
    'font-family="sans-serif" font-weight="700" text-anchor="middle">WA</text></svg>'
});

const highlightPlugin: JupyterFrontEndPlugin<void> = {
  id: 'wasm-sandbox:highlight',
  description: 'Highlights %%wasm cells as WebAssembly text, or as C with --lang c.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: (
    _app: JupyterFrontEnd,
    extensions: IEditorExtensionRegistry,
    languages: IEditorLanguageRegistry
  ) => {
    extensions.addExtension(wasmCellExtensionFactory(new WasmLanguages(languages)));
  }
};

const auditPlugin: JupyterFrontEndPlugin<void> = {
  id: 'wasm-sandbox:audit',
  description: 'The audit-trail panel of sandboxed WebAssembly runs, and its commands.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, ILayoutRestorer, ILauncher, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null,
    registry: ISettingRegistry | null
  ) => {
    const panel = new AuditPanel();
    panel.title.icon = wasmIcon;
    app.shell.add(panel, 'right', { rank: 900 });
    restorer?.add(panel, panel.id);
    void followSettings(registry, panel);

    app.commands.addCommand(CommandIDs.openPanel, {
      label: args => (args.isLauncher ? 'WebAssembly Audit Trail' : 'Open WebAssembly Audit Trail'),
      icon: wasmIcon,
      execute: () => {
        app.shell.activateById(panel.id);
        return panel.refresh(true);
      }
    });
    app.commands.addCommand(CommandIDs.verifyLatest, {
      label: 'Verify Latest WebAssembly Run',
      execute: () => {
        app.shell.activateById(panel.id);
        return panel.verifyLatest();
      }
    });
    app.commands.addCommand(CommandIDs.insertExample, {
      label: 'Insert %%wasm Example Cell',
      isEnabled: () => !!tracker?.currentWidget,
      execute: () => {
        const current = tracker?.currentWidget;
        if (current) {
          insertExample(current.content);
        }
      }
    });
    app.commands.addCommand(CommandIDs.newNotebook, {
      label: args => (args.isLauncher ? 'WebAssembly Notebook' : 'New WebAssembly Notebook'),
      caption: 'A new notebook with %load_ext wasm_sandbox and a %%wasm cell to run',
      icon: notebookIcon,
      execute: async args => {
        const cwd = typeof args.cwd === 'string' ? args.cwd : '';
        const panel: NotebookPanel = await app.commands.execute('notebook:create-new', {
          cwd,
          kernelName: 'python3'
        });
        await panel.context.ready;
        starterCells(panel);
        return panel;
      }
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'WebAssembly' });
    }
    launcher?.add({ command: CommandIDs.newNotebook, category: 'WebAssembly', rank: 1 });
    launcher?.add({ command: CommandIDs.openPanel, category: 'WebAssembly', rank: 2 });

    // A run lands in the log while the cell executes: refresh once the kernel replied.
    NotebookActions.executed.connect((_, { cell }) => {
      if (cell.model.type === 'code' && /^\s*%%?wasm/m.test(cell.model.sharedModel.getSource())) {
        panel.refreshSoon();
      }
    });
  }
};

/** Configure the panel from the `wasm-sandbox:audit` settings, now and on every change. */
async function followSettings(registry: ISettingRegistry | null, panel: AuditPanel): Promise<void> {
  if (!registry) {
    return;
  }
  try {
    const settings = await registry.load(auditPlugin.id);
    const apply = () => void panel.configure(settings.composite as unknown as IAuditSettings);
    settings.changed.connect(apply);
    apply();
  } catch (error) {
    console.warn('wasm-sandbox: cannot load the audit panel settings', error);
  }
}

/** A new notebook's cells: `%load_ext wasm_sandbox`, then the example. */
function starterCells(panel: NotebookPanel): void {
  const shared = panel.content.model?.sharedModel;
  if (!shared) {
    return;
  }
  shared.transact(() => {
    shared.deleteCellRange(0, shared.cells.length);
    shared.insertCells(0, [
      { cell_type: 'code', source: LOAD_CELL },
      { cell_type: 'code', source: EXAMPLE_CELL }
    ]);
  });
  panel.content.activeCellIndex = 1;
}

/** Insert the example below the active cell, after a `%load_ext` cell if none is there. */
function insertExample(notebook: Parameters<typeof NotebookActions.insertBelow>[0]): void {
  const cells = notebook.model?.sharedModel.cells ?? [];
  const loaded = cells.some(c => c.getSource().includes(LOAD_CELL));
  for (const source of loaded ? [EXAMPLE_CELL] : [LOAD_CELL, EXAMPLE_CELL]) {
    NotebookActions.insertBelow(notebook);
    NotebookActions.changeCellType(notebook, 'code');
    notebook.activeCell?.model.sharedModel.setSource(source);
  }
}

export default [highlightPlugin, auditPlugin];
