/**
 * The deployments the server extension reports, and the pure functions the panel shows them
 * with: grouping by notebook/kernel and formatting. No JupyterLab import, so jest tests it as is.
 */

/** Latency percentiles of one deployment, in milliseconds (null before the first request). */
export interface ILatencyMs {
  p50?: number | null;
  p90?: number | null;
  p99?: number | null;
}

/** Traffic figures of one deployment, refreshed by its kernel about once a second. */
export interface IDeploymentMetrics {
  requests?: number;
  errors?: number;
  in_flight?: number;
  latency_ms?: ILatencyMs;
  requests_per_second?: number;
  [other: string]: unknown;
}

/** One live deployment, as `GET {base_url}jupyter-serve/api/deployments` lists it. */
export interface IDeployment {
  id: string;
  name: string;
  kernel_id: string | null;
  notebook_path: string | null;
  model_uri: string;
  version: string | null;
  status: string;
  url: string;
  proxy_url: string | null;
  started_at: number;
  metrics: IDeploymentMetrics;
  /** The model's input columns, when the server knows them (not in the contract yet). */
  input_columns?: string[] | null;
  /** Only for a remote deployment: its target (`ray+http://HOST:8265`). */
  target?: string;
  /** Replicas running and wanted, as the kernel that deployed it last saw them (at `seen_at`). */
  replicas?: number | null;
  target_replicas?: number | null;
  seen_at?: number | null;
}

/** The deployments of one kernel, shown under one heading. */
export interface IDeploymentGroup {
  key: string;
  title: string;
  detail: string | null;
  deployments: IDeployment[];
}

/** What a status looks like: drives the colour of the status dot. */
export type StatusKind = 'ok' | 'pending' | 'error' | 'stopped';

const NO_KERNEL_KEY = '\u0000no-kernel';
const REMOTE_KEY = '\u0000remote:';

/**
 * Groups deployments by kernel, titled by the notebook that runs the kernel when the server
 * knows it. Groups are sorted by title, deployments by name; the input is not modified.
 */
export function groupDeployments(deployments: readonly IDeployment[]): IDeploymentGroup[] {
  const groups = new Map<string, IDeploymentGroup>();
  for (const deployment of deployments) {
    // A remote deployment outlives the kernel that made it: it is shown under its target.
    const key = deployment.target
      ? `${REMOTE_KEY}${deployment.target}`
      : (deployment.kernel_id ?? deployment.notebook_path ?? NO_KERNEL_KEY);
    let group = groups.get(key);
    if (!group) {
      group = { key, ...describeKernel(deployment), deployments: [] };
      groups.set(key, group);
    }
    group.deployments.push(deployment);
  }
  const sorted = [...groups.values()].sort((a, b) => compareText(a.title, b.title));
  for (const group of sorted) {
    group.deployments.sort((a, b) => compareText(a.name, b.name));
  }
  return sorted;
}

function describeKernel(deployment: IDeployment): { title: string; detail: string | null } {
  if (deployment.target) {
    return { title: `Remote: ${targetAddress(deployment.target)}`, detail: deployment.target };
  }
  const kernel = deployment.kernel_id ? `kernel ${deployment.kernel_id.slice(0, 8)}` : null;
  if (deployment.notebook_path) {
    return { title: baseName(deployment.notebook_path), detail: deployment.notebook_path };
  }
  if (kernel) {
    return { title: `Kernel ${deployment.kernel_id!.slice(0, 8)}`, detail: null };
  }
  return { title: 'Outside Jupyter kernels', detail: null };
}

function baseName(path: string): string {
  const parts = path.split('/').filter(part => part.length > 0);
  return parts.length > 0 ? parts[parts.length - 1] : path;
}

function compareText(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true, sensitivity: 'base' });
}

/** Maps the kernel side's statuses to how the panel shows them; unknown ones read as pending. */
export function statusKind(status: string): StatusKind {
  switch (status.toLowerCase()) {
    case 'running':
      return 'ok';
    case 'failed':
    case 'error':
      return 'error';
    case 'stopped':
    case 'stopping':
      return 'stopped';
    default:
      return 'pending';
  }
}

/** A request count as people read it: `987`, `12.3k`, `4.6M`; a dash when unknown. */
export function formatCount(count: number | null | undefined): string {
  if (count === null || count === undefined || !Number.isFinite(count)) {
    return '–';
  }
  const abs = Math.abs(count);
  if (abs < 1000) {
    return String(Math.round(count));
  }
  if (abs < 1_000_000) {
    return `${trimZero((count / 1000).toFixed(abs < 10_000 ? 2 : 1))}k`;
  }
  return `${trimZero((count / 1_000_000).toFixed(1))}M`;
}

/** A latency in milliseconds with precision that fits its size: `0.42 ms`, `17 ms`, `1.2 s`. */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    return '–';
  }
  if (ms < 10) {
    return `${trimZero(ms.toFixed(2))} ms`;
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  return `${trimZero((ms / 1000).toFixed(1))} s`;
}

/** How long a deployment has been up, from epoch seconds: `42 s`, `5 min`, `3 h 20 min`. */
export function formatUptime(startedAtSeconds: number, nowMs: number): string {
  const seconds = Math.max(0, Math.floor(nowMs / 1000 - startedAtSeconds));
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h` : `${hours} h ${rest} min`;
}

/** The model line of a deployment: its URI, and the resolved version when it adds anything. */
export function formatModel(deployment: Pick<IDeployment, 'model_uri' | 'version'>): string {
  const { model_uri: uri, version } = deployment;
  if (!version || uri.endsWith(`/${version}`)) {
    return uri;
  }
  return `${uri} (v${version})`;
}

function trimZero(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/**
 * The line a remote deployment shows under its name: where it runs and its replicas (running /
 * wanted, as last seen), e.g. `Ray 10.0.0.5:8265 · 2/2 replicas`; null for one in a kernel.
 */
export function formatRemote(
  deployment: Pick<IDeployment, 'target' | 'replicas' | 'target_replicas'>
): string | null {
  if (!deployment.target) {
    return null;
  }
  const running = deployment.replicas ?? '?';
  const wanted = deployment.target_replicas ?? '?';
  const noun = wanted === 1 ? 'replica' : 'replicas';
  const engine = deployment.target.startsWith('ray+') ? 'Ray ' : '';
  return `${engine}${targetAddress(deployment.target)} · ${running}/${wanted} ${noun}`;
}

function targetAddress(target: string): string {
  return target.replace(/^[a-z]+\+https?:\/\//, '').replace(/\/$/, '');
}
