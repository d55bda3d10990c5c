/**
 * Building what the panel sends and copies: the `/invocations` body from what the user typed,
 * the proxied URLs and a ready-to-run `curl`. Pure functions, no JupyterLab import.
 */

import { IDeployment } from './model';

/** The column a plain-text sample goes into when the server does not say (the tutorial's). */
export const DEFAULT_TEXT_COLUMN = 'text';

/** A request body ready for `POST /invocations`, and how it was made. */
export interface IInvocationBody {
  /** The JSON text to send with `Content-Type: application/json`. */
  body: string;
  /** `json` when the user's input was used as is, `text` when it was wrapped. */
  source: 'json' | 'text';
}

/**
 * Turns what the user typed into an `/invocations` body. A JSON object is sent unchanged (so
 * every MLflow payload works: `dataframe_split`, `instances`, `inputs`, ...); anything else,
 * such as a pasted email, becomes a one-row `dataframe_split` holding the whole text in
 * `column`. Throws an Error with advice when the input is empty.
 */
export function buildInvocationBody(input: string, column: string): IInvocationBody {
  const trimmed = input.trim();
  if (trimmed.length === 0) {
    throw new Error(
      'Nothing to send: paste a JSON request body (for example {"dataframe_split": ...}) or a sample text.'
    );
  }
  if (trimmed.startsWith('{')) {
    const parsed = tryParseJson(trimmed);
    if (parsed !== undefined && parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return { body: trimmed, source: 'json' };
    }
  }
  const name = column.trim() || DEFAULT_TEXT_COLUMN;
  const body = { dataframe_split: { columns: [name], data: [[input.trim()]] } };
  return { body: JSON.stringify(body), source: 'text' };
}

/** The column a plain-text sample goes into for `deployment`: its first input column if known. */
export function textColumnFor(deployment: Pick<IDeployment, 'input_columns'>): string {
  const first = deployment.input_columns?.[0];
  return first ? first : DEFAULT_TEXT_COLUMN;
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The absolute URL of `route` (e.g. `ping`, `invocations`) of a deployment behind the Jupyter
 * server's proxy. `serverBaseUrl` is the Jupyter server's absolute base URL (ending in `/`);
 * the deployment's `proxy_url` (an absolute path) wins when present.
 */
export function proxiedUrl(
  serverBaseUrl: string,
  deployment: Pick<IDeployment, 'id' | 'proxy_url'>,
  route: string
): string {
  const proxyRoot = deployment.proxy_url
    ? new URL(withTrailingSlash(deployment.proxy_url), serverBaseUrl)
    : new URL(`jupyter-serve/proxy/${encodeURIComponent(deployment.id)}/`, serverBaseUrl);
  return new URL(route.replace(/^\/+/, ''), proxyRoot).href;
}

function withTrailingSlash(path: string): string {
  return path.endsWith('/') ? path : `${path}/`;
}

/** What stands in a copied `curl` when the page has no token to put there. */
export const TOKEN_PLACEHOLDER = '<your-jupyter-token>';

/**
 * A `curl` command scoring `body` through the proxy at `invocationsUrl`, authenticated with
 * Jupyter's token header (`token` when given, else a placeholder to fill in). Every argument
 * is single-quoted for POSIX shells, so any body is safe to paste.
 */
export function buildCurl(invocationsUrl: string, body: string, token: string | null): string {
  const auth = `Authorization: token ${token ? token : TOKEN_PLACEHOLDER}`;
  return [
    `curl -X POST ${shellQuote(invocationsUrl)}`,
    `  -H ${shellQuote(auth)}`,
    `  -H ${shellQuote('Content-Type: application/json')}`,
    `  -d ${shellQuote(body)}`
  ].join(' \\\n');
}

/** `value` as one single-quoted POSIX shell word. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A scoring answer made readable: JSON pretty-printed, anything else as received. */
export function formatAnswer(text: string): string {
  const parsed = tryParseJson(text);
  return parsed === undefined ? text : JSON.stringify(parsed, null, 2);
}
