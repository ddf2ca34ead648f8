/**
 * LNDS SPE airlock in JupyterLab. In a project workspace: "Request export…" on files under
 * ~/outputs (file browser context menu and command palette) and the Export requests side panel.
 * In an output checker's review server: the Output review panel, opened at start.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { LabIcon } from '@jupyterlab/ui-components';

import { AirlockClient, AirlockError } from './api';
import { outputName } from './model';
import { RequestsPanel, ReviewPanel } from './panels';

const CATEGORY = 'Airlock';
const ICON = new LabIcon({
  name: 'lnds-spe-airlock:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3zm-1 14-4-4 1.4-1.4L11 13.2l5.6-5.6L18 9l-7 7z"/></svg>'
});

export namespace CommandIDs {
  export const requestExport = 'lnds-spe-airlock:request-export';
  export const openRequests = 'lnds-spe-airlock:open-requests';
  export const openReview = 'lnds-spe-airlock:open-review';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'lnds-spe-airlock:plugin',
  description: 'Export requests and output review through the LNDS SPE airlock.',
  autoStart: true,
  requires: [IDefaultFileBrowser],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    browser: IDefaultFileBrowser,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const client = new AirlockClient();
    let info;
    try {
      info = await client.info();
    } catch (error) {
      console.warn('lnds-spe-airlock: no server part answered; the airlock is not offered', error);
      return;
    }
    if (info.kind === 'review') {
      activateReview(app, client, palette);
    } else {
      activateRequests(app, client, info.project, browser, palette, restorer);
    }
  }
};

function activateRequests(
  app: JupyterFrontEnd,
  client: AirlockClient,
  project: string,
  browser: IDefaultFileBrowser,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): void {
  const panel = new RequestsPanel(client, project);
  panel.title.icon = ICON;
  panel.title.caption = 'Export requests (airlock)';
  app.shell.add(panel, 'right', { rank: 900 });
  restorer?.add(panel, panel.id);
  void panel.refresh();

  const selectedOutput = (): string | null => {
    const item = browser.selectedItems().next();
    const model = item && !item.done ? item.value : null;
    return model && model.type !== 'directory' ? outputName(model.path) : null;
  };

  app.commands.addCommand(CommandIDs.requestExport, {
    label: args => (args.fromPalette ? 'Request export of the selected file…' : 'Request export…'),
    caption: 'Add this file of ~/outputs to an export request (the airlock copies it on the hub side)',
    icon: ICON,
    isVisible: () => selectedOutput() !== null,
    isEnabled: () => selectedOutput() !== null,
    execute: async () => {
      const name = selectedOutput();
      if (!name) {
        await showErrorMessage('Request export', 'Select a file under ~/outputs in the file browser first.');
        return;
      }
      app.shell.activateById(panel.id);
      await panel.requestExport(name);
    }
  });
  app.commands.addCommand(CommandIDs.openRequests, {
    label: 'Open export requests',
    caption: 'The project\'s export requests and the request being built',
    icon: ICON,
    execute: async () => {
      app.shell.activateById(panel.id);
      await panel.refresh();
    }
  });
  app.contextMenu.addItem({
    command: CommandIDs.requestExport,
    selector: '.jp-DirListing-item[data-isdir="false"]',
    rank: 3
  });
  palette?.addItem({ command: CommandIDs.requestExport, category: CATEGORY, args: { fromPalette: true } });
  palette?.addItem({ command: CommandIDs.openRequests, category: CATEGORY });
}

function activateReview(app: JupyterFrontEnd, client: AirlockClient, palette: ICommandPalette | null): void {
  let widget: MainAreaWidget<ReviewPanel> | null = null;
  const open = async () => {
    if (!widget || widget.isDisposed) {
      const panel = new ReviewPanel(client);
      widget = new MainAreaWidget({ content: panel });
      widget.id = 'lnds-airlock-review';
      widget.title.label = 'Output review';
      widget.title.icon = ICON;
      widget.title.closable = true;
      app.shell.add(widget, 'main');
      try {
        panel.setUser((await client.whoami()).name);
      } catch (error) {
        if (!(error instanceof AirlockError)) {
          throw error;
        }
      }
      await panel.refresh();
    }
    app.shell.activateById(widget.id);
  };
  app.commands.addCommand(CommandIDs.openReview, {
    label: 'Open output review',
    caption: 'Review export requests of the projects you check',
    icon: ICON,
    execute: open
  });
  palette?.addItem({ command: CommandIDs.openReview, category: CATEGORY });
  void app.restored.then(open);
}

export default plugin;
