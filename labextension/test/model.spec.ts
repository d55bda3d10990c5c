import {
  formatCount,
  formatLatency,
  formatModel,
  formatRemote,
  formatUptime,
  groupDeployments,
  IDeployment,
  statusKind
} from '../src/model';

function deployment(overrides: Partial<IDeployment>): IDeployment {
  return {
    id: '100-clf',
    name: 'clf',
    kernel_id: 'k-1',
    notebook_path: 'work/spam.ipynb',
    model_uri: 'models:/spam/Production',
    version: '3',
    status: 'running',
    url: 'http://127.0.0.1:5000',
    proxy_url: '/jupyter-serve/proxy/100-clf/',
    started_at: 1000,
    metrics: {},
    ...overrides
  };
}

describe('groupDeployments', () => {
  it('groups by kernel, titles by notebook name, sorts groups and deployments', () => {
    const groups = groupDeployments([
      deployment({ id: '1-zeta', name: 'zeta', kernel_id: 'k-b', notebook_path: 'b/train.ipynb' }),
      deployment({ id: '2-alpha', name: 'alpha', kernel_id: 'k-a', notebook_path: 'a/eval.ipynb' }),
      deployment({ id: '1-beta', name: 'beta', kernel_id: 'k-b', notebook_path: 'b/train.ipynb' })
    ]);
    expect(groups.map(g => g.title)).toEqual(['eval.ipynb', 'train.ipynb']);
    expect(groups[1].detail).toBe('b/train.ipynb');
    expect(groups[1].deployments.map(d => d.name)).toEqual(['beta', 'zeta']);
  });

  it('keeps two notebooks with the same file name apart (they are different kernels)', () => {
    const groups = groupDeployments([
      deployment({ id: '1-a', name: 'a', kernel_id: 'k-1', notebook_path: 'x/nb.ipynb' }),
      deployment({ id: '2-b', name: 'b', kernel_id: 'k-2', notebook_path: 'y/nb.ipynb' })
    ]);
    expect(groups).toHaveLength(2);
    expect(groups.map(g => g.detail).sort()).toEqual(['x/nb.ipynb', 'y/nb.ipynb']);
  });

  it('names kernels without a notebook, and deployments outside any kernel', () => {
    const groups = groupDeployments([
      deployment({ id: '1-a', name: 'a', kernel_id: 'abcdef0123456789', notebook_path: null }),
      deployment({ id: '2-b', name: 'b', kernel_id: null, notebook_path: null })
    ]);
    expect(groups.map(g => g.title)).toEqual(['Kernel abcdef01', 'Outside Jupyter kernels']);
  });

  it('returns no group for no deployment and leaves its input alone', () => {
    expect(groupDeployments([])).toEqual([]);
    const input = [deployment({ name: 'b', id: '1-b' }), deployment({ name: 'a', id: '1-a' })];
    groupDeployments(input);
    expect(input.map(d => d.name)).toEqual(['b', 'a']);
  });
});

describe('formatting', () => {
  it('formats counts compactly', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(987)).toBe('987');
    expect(formatCount(1234)).toBe('1.23k');
    expect(formatCount(12_345)).toBe('12.3k');
    expect(formatCount(20_000)).toBe('20k');
    expect(formatCount(4_560_000)).toBe('4.6M');
    expect(formatCount(undefined)).toBe('–');
  });

  it('formats latencies with a precision that fits their size', () => {
    expect(formatLatency(0.4213)).toBe('0.42 ms');
    expect(formatLatency(5)).toBe('5 ms');
    expect(formatLatency(17.4)).toBe('17 ms');
    expect(formatLatency(1234)).toBe('1.2 s');
    expect(formatLatency(null)).toBe('–');
    expect(formatLatency(Number.NaN)).toBe('–');
  });

  it('formats uptime from epoch seconds', () => {
    expect(formatUptime(1000, 1_042_000)).toBe('42 s');
    expect(formatUptime(1000, 1_000_000 + 5 * 60_000 + 10_000)).toBe('5 min');
    expect(formatUptime(1000, 1_000_000 + 3 * 3_600_000 + 20 * 60_000)).toBe('3 h 20 min');
    expect(formatUptime(1000, 1_000_000 + 2 * 3_600_000)).toBe('2 h');
    expect(formatUptime(2000, 1_000_000)).toBe('0 s');
  });

  it('shows the resolved version only when the URI does not already say it', () => {
    expect(formatModel({ model_uri: 'models:/spam/Production', version: '3' })).toBe(
      'models:/spam/Production (v3)'
    );
    expect(formatModel({ model_uri: 'models:/spam/3', version: '3' })).toBe('models:/spam/3');
    expect(formatModel({ model_uri: '<object LogisticRegression>', version: null })).toBe(
      '<object LogisticRegression>'
    );
  });

  it('maps statuses to what the dot shows', () => {
    expect(statusKind('running')).toBe('ok');
    expect(statusKind('Running')).toBe('ok');
    expect(statusKind('starting')).toBe('pending');
    expect(statusKind('failed')).toBe('error');
    expect(statusKind('stopped')).toBe('stopped');
    expect(statusKind('something new')).toBe('pending');
  });
});

describe('remote deployments', () => {
  const remote = deployment({
    id: 'remote-0a1b2c3d-spam',
    name: 'spam',
    kernel_id: 'k-1',
    url: 'http://10.0.0.5:8000/spam',
    target: 'ray+http://10.0.0.5:8265',
    replicas: 1,
    target_replicas: 2
  });

  it('shows the target and replicas running/wanted', () => {
    expect(formatRemote(remote)).toBe('Ray 10.0.0.5:8265 · 1/2 replicas');
    expect(formatRemote({ ...remote, replicas: 1, target_replicas: 1 })).toBe(
      'Ray 10.0.0.5:8265 · 1/1 replica'
    );
    expect(formatRemote({ ...remote, replicas: null, target_replicas: null })).toBe(
      'Ray 10.0.0.5:8265 · ?/? replicas'
    );
  });

  it('shows nothing remote for a deployment in a kernel', () => {
    expect(formatRemote(deployment({}))).toBeNull();
  });

  it('groups remote deployments under their target, not the kernel that made them', () => {
    const groups = groupDeployments([remote, deployment({ id: '100-clf', kernel_id: 'k-1' })]);
    expect(groups.map(g => g.title)).toEqual(['Remote: 10.0.0.5:8265', 'spam.ipynb']);
    expect(groups[0].detail).toBe('ray+http://10.0.0.5:8265');
    expect(groups[0].deployments.map(d => d.id)).toEqual(['remote-0a1b2c3d-spam']);
  });
});
