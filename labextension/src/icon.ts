import { LabIcon } from '@jupyterlab/ui-components';

/** A small server rack; `jp-icon3` makes it follow the light and dark themes. */
const deploymentsSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 3h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm2 2.5a1 1 0 1 0 0 2 1 1 0 0 0 0-2zM10 6v1h8V6h-8z"/>
    <path d="M4 14h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1v-5a1 1 0 0 1 1-1zm2 2.5a1 1 0 1 0 0 2 1 1 0 0 0 0-2zM10 17v1h8v-1h-8z"/>
  </g>
</svg>`;

export const deploymentsIcon = new LabIcon({ name: 'jupyter-serve:deployments', svgstr: deploymentsSvg });
