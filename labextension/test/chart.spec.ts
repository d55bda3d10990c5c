import { niceTicks, prepareChart, TrafficHistory, WINDOW_MS } from '../src/chart';
import { IDeployment } from '../src/model';

function listed(id: string, requests: number, p50: number | null, p99: number | null): IDeployment {
  return {
    id,
    name: id,
    kernel_id: 'k',
    notebook_path: null,
    model_uri: 'models:/m/1',
    version: '1',
    status: 'running',
    url: 'http://127.0.0.1:1',
    proxy_url: null,
    started_at: 0,
    metrics: { requests, latency_ms: { p50, p99 } }
  };
}

describe('TrafficHistory', () => {
  it('turns request counts between listings into requests per second, per deployment', () => {
    const history = new TrafficHistory();
    history.add([listed('a', 10, null, null), listed('b', 0, null, null)], 1_000);
    expect(history.points('a')).toEqual([]);
    history.add([listed('a', 30, 1.5, 9), listed('b', 5, 2, 4)], 3_000);
    expect(history.points('a')).toEqual([{ timeMs: 3_000, requestsPerSecond: 10, p50Ms: 1.5, p99Ms: 9 }]);
    expect(history.points('b')).toEqual([{ timeMs: 3_000, requestsPerSecond: 2.5, p50Ms: 2, p99Ms: 4 }]);
  });

  it('never reports a negative rate after a restart, and skips listings under a second apart', () => {
    const history = new TrafficHistory();
    history.add([listed('a', 100, 1, 2)], 0);
    history.add([listed('a', 200, 1, 2)], 500);
    expect(history.points('a')).toEqual([]);
    history.add([listed('a', 4, 1, 2)], 2_000);
    expect(history.points('a').map(p => p.requestsPerSecond)).toEqual([0]);
  });

  it('keeps only the window and forgets deployments no longer listed', () => {
    const history = new TrafficHistory();
    for (let t = 0; t <= WINDOW_MS + 10_000; t += 5_000) {
      history.add([listed('a', t / 1000, 1, 2)], t);
    }
    const points = history.points('a');
    expect(points[0].timeMs).toBeGreaterThanOrEqual(10_000);
    expect(points[points.length - 1].timeMs).toBe(WINDOW_MS + 10_000);
    history.add([], WINDOW_MS + 20_000);
    expect(history.points('a')).toEqual([]);
  });
});

describe('niceTicks', () => {
  it('ends on a round value at or above the top', () => {
    expect(niceTicks(9.3, 3)).toEqual([0, 5, 10]);
    expect(niceTicks(26.2, 4)).toEqual([0, 10, 20, 30]);
    expect(niceTicks(0)).toEqual([0, 0.5, 1]);
    expect(niceTicks(0.37, 4)).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
  });
});

describe('prepareChart', () => {
  const points = [
    { timeMs: 0, requestsPerSecond: 0, p50Ms: null, p99Ms: null },
    { timeMs: 30_000, requestsPerSecond: 8, p50Ms: 2, p99Ms: 18 },
    { timeMs: 60_000, requestsPerSecond: 4, p50Ms: 1, p99Ms: 9 }
  ];

  it('places the newest point at the right edge and scales each panel to its round top', () => {
    const chart = prepareChart(points, 234, 40, 34);
    expect(chart.spanSeconds).toBe(60);
    const [rate] = chart.rate.series;
    expect(rate.points).toBe('34.0,40.0 132.0,8.0 230.0,24.0');
    expect(rate.latest).toBe(4);
    expect(chart.rate.ticks.map(t => t.label)).toEqual(['0', '5', '10']);
    const [p50, p99] = chart.latency.series;
    // p50/p99 are null before the first request: those points are left out, not drawn as 0
    expect(p99.points).toBe('132.0,4.0 230.0,22.0');
    expect(p50.latest).toBe(1);
    expect(chart.latency.ticks[chart.latency.ticks.length - 1].value).toBe(20);
    expect(chart.timeTicks.map(t => t.label)).toEqual(['now', '−15 s', '−30 s', '−45 s', '−1 min']);
  });

  it('draws no line from fewer than two points', () => {
    const chart = prepareChart(points.slice(2));
    expect(chart.rate.series[0].points).toBe('');
    expect(chart.rate.series[0].latest).toBe(4);
    expect(prepareChart([]).latency.series.every(s => s.latest === null && s.points === '')).toBe(true);
  });

  it('grows the time axis by whole minutes up to five', () => {
    const long = [0, 150_000, 400_000].map(t => ({ ...points[1], timeMs: t }));
    expect(prepareChart(long.slice(0, 2)).spanSeconds).toBe(180);
    expect(prepareChart(long).spanSeconds).toBe(300);
  });
});
