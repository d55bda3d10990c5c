/**
 * jupyter-serve's JupyterLab extension: a Deployments sidebar listing the model deployments
 * of every kernel, and a palette command to open it.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { deploymentsIcon } from './icon';
import { DeploymentsPanel } from './panel';

/** The palette command that reveals the Deployments sidebar. */
export const OPEN_COMMAND = 'jupyter-serve:open-deployments';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-serve:deployments',
  description: 'A sidebar listing the model deployments served inside Jupyter kernels.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    const settings = ServerConnection.makeSettings();
    const token = PageConfig.getToken() || null;
    const panel = new DeploymentsPanel(settings, token);
    app.shell.add(panel, 'left', { rank: 250 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Show Model Deployments',
      caption: 'Open the sidebar listing the models served by jupyter-serve',
      icon: deploymentsIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Model Serving' });
  }
};

export default plugin;
