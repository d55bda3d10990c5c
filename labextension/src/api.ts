/**
 * The server extension's REST API (`{base_url}jupyter-serve/...`), called through
 * `ServerConnection.makeRequest` so Jupyter's token, cookies and XSRF header are handled.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IDeployment } from './model';
import { proxiedUrl } from './tryit';

/** A failed call to the server extension, with the message the server gave. */
export class DeploymentsApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/** The answer of a scoring request sent through the proxy. */
export interface IScoringAnswer {
  status: number;
  contentType: string;
  text: string;
}

/** Every live deployment of every kernel of this Jupyter server. */
export async function listDeployments(settings: ServerConnection.ISettings): Promise<IDeployment[]> {
  const url = URLExt.join(settings.baseUrl, 'jupyter-serve', 'api', 'deployments');
  const response = await send(url, { method: 'GET' }, settings);
  if (!response.ok) {
    throw await apiError(response, 'list the deployments');
  }
  const data: unknown = await response.json();
  if (!Array.isArray(data)) {
    throw new DeploymentsApiError(
      `The server answered ${url} with something other than a JSON list; is jupyter-serve's server extension enabled?`,
      response.status
    );
  }
  return data as IDeployment[];
}

/** Stops deployment `id`; resolves once the server says it stopped (an unknown id is an error). */
export async function stopDeployment(id: string, settings: ServerConnection.ISettings): Promise<void> {
  const url = URLExt.join(settings.baseUrl, 'jupyter-serve', 'api', 'deployments', encodeURIComponent(id));
  const response = await send(url, { method: 'DELETE' }, settings);
  if (!response.ok) {
    throw await apiError(response, `stop deployment ${id}`);
  }
}

/** Sends `body` (JSON text) to the deployment's `/invocations` through the proxy; any status resolves. */
export async function invokeDeployment(
  deployment: IDeployment,
  body: string,
  settings: ServerConnection.ISettings
): Promise<IScoringAnswer> {
  const url = proxiedUrl(settings.baseUrl, deployment, 'invocations');
  const response = await send(
    url,
    { method: 'POST', body, headers: { 'Content-Type': 'application/json' } },
    settings
  );
  return {
    status: response.status,
    contentType: response.headers.get('Content-Type') ?? '',
    text: await response.text()
  };
}

async function send(url: string, init: RequestInit, settings: ServerConnection.ISettings): Promise<Response> {
  try {
    return await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new DeploymentsApiError(`Could not reach the Jupyter server at ${url}: ${String(error)}`, 0);
  }
}

async function apiError(response: Response, action: string): Promise<DeploymentsApiError> {
  let message = '';
  try {
    const data = (await response.json()) as { message?: unknown };
    message = typeof data.message === 'string' ? data.message : '';
  } catch {
    // Not JSON: the status says enough.
  }
  const hint =
    response.status === 404 && !message
      ? ' (is the jupyter-serve server extension enabled? `jupyter server extension list`)'
      : '';
  return new DeploymentsApiError(
    `Could not ${action}: HTTP ${response.status}${message ? `: ${message}` : ''}${hint}`,
    response.status
  );
}
