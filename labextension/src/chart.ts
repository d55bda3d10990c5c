/**
 * The traffic chart of one deployment in the sidebar: requests per second and p50/p99 latency
 * over the last minutes. `TrafficHistory` accumulates what the poller fetches; `prepareChart`
 * turns a history into scaled polylines, round ticks and legend values. No JupyterLab or React
 * import, so jest tests it as is.
 */

import { IDeployment } from './model';

/** The figures of one deployment at one moment (milliseconds since the epoch). */
export interface ITrafficPoint {
  timeMs: number;
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

/** How far back the chart looks, and the shortest spacing kept between two points. */
export const WINDOW_MS = 5 * 60 * 1000;
export const MIN_SPACING_MS = 900;

function finiteOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/**
 * The recent traffic of every listed deployment, keyed by deployment id. The rate is the
 * growth of the request count between two listings (exact for the interval); the first
 * listing of a deployment gives no point. Deployments no longer listed are forgotten.
 */
export class TrafficHistory {
  /** Records one listing fetched at `nowMs`. */
  add(deployments: readonly IDeployment[], nowMs: number): void {
    const listed = new Set<string>();
    for (const deployment of deployments) {
      listed.add(deployment.id);
      const metrics = deployment.metrics ?? {};
      const requests = finiteOrNull(metrics.requests);
      const last = this._last.get(deployment.id);
      if (requests === null || (last && nowMs - last.timeMs < MIN_SPACING_MS)) {
        continue;
      }
      this._last.set(deployment.id, { timeMs: nowMs, requests });
      if (!last) {
        continue;
      }
      const points = this._points.get(deployment.id) ?? [];
      points.push({
        timeMs: nowMs,
        // a restarted server counts from zero again: never a negative rate
        requestsPerSecond: Math.max(0, requests - last.requests) / ((nowMs - last.timeMs) / 1000),
        p50Ms: finiteOrNull(metrics.latency_ms?.p50),
        p99Ms: finiteOrNull(metrics.latency_ms?.p99)
      });
      while (points.length > 0 && points[0].timeMs < nowMs - WINDOW_MS) {
        points.shift();
      }
      this._points.set(deployment.id, points);
    }
    for (const id of [...this._last.keys()]) {
      if (!listed.has(id)) {
        this._last.delete(id);
        this._points.delete(id);
      }
    }
  }

  /** The points of one deployment, oldest first (empty when unknown). */
  points(id: string): ITrafficPoint[] {
    return [...(this._points.get(id) ?? [])];
  }

  private _last = new Map<string, { timeMs: number; requests: number }>();
  private _points = new Map<string, ITrafficPoint[]>();
}

/** Round tick values from 0 to at least `top`: 1, 2 or 5 times a power of ten apart. */
export function niceTicks(top: number, most = 4): number[] {
  const ceiling = Number.isFinite(top) && top > 0 ? top : 1;
  const raw = ceiling / most;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw) ?? 10 * power;
  const count = Math.ceil(ceiling / step - 1e-9);
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

export interface IChartSeries {
  name: string;
  /** SVG `points` of the polyline; empty when fewer than two values exist. */
  points: string;
  latest: number | null;
}

export interface IChartPanel {
  title: string;
  ticks: { value: number; label: string; y: number }[];
  series: IChartSeries[];
}

export interface IPreparedChart {
  width: number;
  panelHeight: number;
  left: number;
  /** Seconds the time axis spans: a minute at first, growing by minutes to the window. */
  spanSeconds: number;
  timeTicks: { x: number; label: string }[];
  rate: IChartPanel;
  latency: IChartPanel;
}

type Pick = (point: ITrafficPoint) => number | null;

/** Scales `points` (oldest first) into two panels `width` wide, each `panelHeight` tall. */
export function prepareChart(
  points: readonly ITrafficPoint[],
  width = 260,
  panelHeight = 40,
  left = 34
): IPreparedChart {
  const nowMs = points.length > 0 ? points[points.length - 1].timeMs : 0;
  const spanMs =
    points.length < 2
      ? 60_000
      : Math.min(WINDOW_MS, 60_000 * Math.max(1, Math.ceil((nowMs - points[0].timeMs) / 60_000)));
  const plotWidth = width - left - 4;
  const x = (timeMs: number): number => left + plotWidth * (1 - (nowMs - timeMs) / spanMs);

  const panel = (title: string, series: [string, Pick][]): IChartPanel => {
    const values = series.flatMap(([, pick]) =>
      points.map(pick).filter((v): v is number => v !== null)
    );
    const ticks = niceTicks(values.length > 0 ? Math.max(...values) : 0, 3);
    const top = ticks[ticks.length - 1];
    const y = (value: number): number => panelHeight - (value / top) * panelHeight;
    return {
      title,
      ticks: ticks.map(value => ({ value, label: tickLabel(value), y: y(value) })),
      series: series.map(([name, pick]) => {
        const kept = points.filter(p => pick(p) !== null);
        return {
          name,
          points:
            kept.length < 2
              ? ''
              : kept.map(p => `${x(p.timeMs).toFixed(1)},${y(pick(p)!).toFixed(1)}`).join(' '),
          latest: points.length > 0 ? pick(points[points.length - 1]) : null
        };
      })
    };
  };

  const stepSeconds = spanMs > 120_000 ? 60 : spanMs > 60_000 ? 30 : 15;
  const timeTicks: { x: number; label: string }[] = [];
  for (let ago = 0; ago <= spanMs / 1000 + 1e-9; ago += stepSeconds) {
    const label = ago === 0 ? 'now' : ago >= 60 ? `−${ago / 60} min` : `−${ago} s`;
    timeTicks.push({ x: left + plotWidth * (1 - (ago * 1000) / spanMs), label });
  }
  return {
    width,
    panelHeight,
    left,
    spanSeconds: spanMs / 1000,
    timeTicks,
    rate: panel('requests / s', [['requests/s', p => p.requestsPerSecond]]),
    latency: panel('latency (ms)', [
      ['p50', p => p.p50Ms],
      ['p99', p => p.p99Ms]
    ])
  };
}

function tickLabel(value: number): string {
  return value >= 1000 ? `${Number((value / 1000).toPrecision(3))}k` : String(value);
}
