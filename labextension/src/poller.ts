/**
 * Keeps the deployment list fresh while someone looks at it: one fetch every interval while
 * started, none while stopped (the panel starts it when shown and stops it when hidden).
 * No JupyterLab import: the fetch function is given, so jest drives it with fake timers.
 */

import { TrafficHistory } from './chart';
import { IDeployment } from './model';

/** What the panel renders: the last list fetched, and the last error if the last fetch failed. */
export interface IDeploymentsSnapshot {
  deployments: IDeployment[];
  loaded: boolean;
  error: string | null;
}

export type DeploymentsFetcher = () => Promise<IDeployment[]>;

/** Polls `fetcher` every `intervalMs` while started; never runs two fetches at once. */
export class DeploymentsPoller {
  constructor(
    private readonly fetcher: DeploymentsFetcher,
    readonly intervalMs = 2000
  ) {}

  /** The traffic of every listed deployment over the last minutes, from the listings fetched. */
  readonly history = new TrafficHistory();

  /** The latest state; replaced (never mutated) on every change. */
  get snapshot(): IDeploymentsSnapshot {
    return this._snapshot;
  }

  get isRunning(): boolean {
    return this._running;
  }

  /** Calls `listener` after every change; returns a function that unsubscribes it. */
  subscribe(listener: (snapshot: IDeploymentsSnapshot) => void): () => void {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /** Fetches now, then every interval until `stop()`. Calling it again while running is a no-op. */
  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    void this.refresh();
  }

  /** Stops polling; a fetch in flight still updates the snapshot when it lands. */
  stop(): void {
    this._running = false;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** Fetches now (e.g. right after a stop); resolves when the snapshot is updated. */
  async refresh(): Promise<void> {
    if (this._inFlight) {
      return this._inFlight;
    }
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._inFlight = this.fetchOnce();
    try {
      await this._inFlight;
    } finally {
      this._inFlight = null;
      if (this._running && this._timer === null) {
        this._timer = setTimeout(() => {
          this._timer = null;
          void this.refresh();
        }, this.intervalMs);
      }
    }
  }

  /** Stops polling and forgets every listener. */
  dispose(): void {
    this.stop();
    this._listeners.clear();
  }

  private async fetchOnce(): Promise<void> {
    try {
      const deployments = await this.fetcher();
      this.history.add(deployments, Date.now());
      this.update({ deployments, loaded: true, error: null });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.update({ ...this._snapshot, error: message });
    }
  }

  private update(snapshot: IDeploymentsSnapshot): void {
    this._snapshot = snapshot;
    for (const listener of [...this._listeners]) {
      listener(snapshot);
    }
  }

  private _snapshot: IDeploymentsSnapshot = { deployments: [], loaded: false, error: null };
  private _listeners = new Set<(snapshot: IDeploymentsSnapshot) => void>();
  private _running = false;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _inFlight: Promise<void> | null = null;
}
