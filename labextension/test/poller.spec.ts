import { IDeployment } from '../src/model';
import { DeploymentsPoller, IDeploymentsSnapshot } from '../src/poller';

function fakeDeployment(name: string): IDeployment {
  return {
    id: `1-${name}`,
    name,
    kernel_id: 'k',
    notebook_path: null,
    model_uri: 'models:/m/1',
    version: '1',
    status: 'running',
    url: 'http://127.0.0.1:1',
    proxy_url: null,
    started_at: 0,
    metrics: {}
  };
}

async function flushPromises(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

describe('DeploymentsPoller', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('fetches at once when started, then every interval, and not after stop', async () => {
    const fetcher = jest.fn(async () => [fakeDeployment('a')]);
    const poller = new DeploymentsPoller(fetcher, 2000);
    const seen: IDeploymentsSnapshot[] = [];
    poller.subscribe(s => seen.push(s));

    poller.start();
    await flushPromises();
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(seen[0]).toEqual({ deployments: [fakeDeployment('a')], loaded: true, error: null });

    await jest.advanceTimersByTimeAsync(2000);
    expect(fetcher).toHaveBeenCalledTimes(2);
    await jest.advanceTimersByTimeAsync(2000);
    expect(fetcher).toHaveBeenCalledTimes(3);

    poller.stop();
    await jest.advanceTimersByTimeAsync(10_000);
    expect(fetcher).toHaveBeenCalledTimes(3);
    expect(poller.isRunning).toBe(false);
  });

  it('keeps the last list and reports the error when a fetch fails, then recovers', async () => {
    let fail = false;
    const fetcher = jest.fn(async () => {
      if (fail) {
        throw new Error('HTTP 500');
      }
      return [fakeDeployment('a')];
    });
    const poller = new DeploymentsPoller(fetcher, 1000);
    poller.start();
    await flushPromises();
    fail = true;
    await jest.advanceTimersByTimeAsync(1000);
    expect(poller.snapshot.error).toBe('HTTP 500');
    expect(poller.snapshot.deployments).toHaveLength(1);
    fail = false;
    await jest.advanceTimersByTimeAsync(1000);
    expect(poller.snapshot.error).toBeNull();
    poller.dispose();
  });

  it('never runs two fetches at once, and start twice polls once', async () => {
    let release: (value: IDeployment[]) => void = () => undefined;
    const fetcher = jest.fn(() => new Promise<IDeployment[]>(resolve => (release = resolve)));
    const poller = new DeploymentsPoller(fetcher, 1000);
    poller.start();
    poller.start();
    const again = poller.refresh();
    expect(fetcher).toHaveBeenCalledTimes(1);
    release([]);
    await again;
    expect(poller.snapshot.loaded).toBe(true);
    poller.dispose();
  });

  it('stops calling a listener once it unsubscribed', async () => {
    const poller = new DeploymentsPoller(async () => [], 1000);
    const listener = jest.fn();
    const unsubscribe = poller.subscribe(listener);
    await poller.refresh();
    unsubscribe();
    await poller.refresh();
    expect(listener).toHaveBeenCalledTimes(1);
  });
});
