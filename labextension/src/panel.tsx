/**
 * The Deployments sidebar: a ReactWidget that renders the poller's snapshot, polls only while
 * visible, and offers per-deployment actions (open, copy curl, stop, try it).
 */

import { Clipboard, Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import {
  caretDownIcon,
  caretRightIcon,
  copyIcon,
  LabIcon,
  launchIcon,
  ReactWidget,
  refreshIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React, { useEffect, useState } from 'react';

import { IPreparedChart, ITrafficPoint, prepareChart } from './chart';
import { invokeDeployment, listDeployments, stopDeployment } from './api';
import { deploymentsIcon } from './icon';
import {
  formatCount,
  formatLatency,
  formatModel,
  formatRemote,
  formatUptime,
  groupDeployments,
  IDeployment,
  IDeploymentGroup,
  statusKind
} from './model';
import { DeploymentsPoller, IDeploymentsSnapshot } from './poller';
import { buildCurl, buildInvocationBody, formatAnswer, proxiedUrl, textColumnFor } from './tryit';

const SAMPLE_TEXT = 'Congratulations! You have won a free cruise. Reply now to claim your prize.';

interface IPanelContext {
  settings: ServerConnection.ISettings;
  traffic: (id: string) => ITrafficPoint[];
  token: string | null;
  refresh: () => Promise<void>;
}

/** The sidebar widget. Polls every two seconds while shown, not at all while hidden. */
export class DeploymentsPanel extends ReactWidget {
  constructor(settings: ServerConnection.ISettings, token: string | null) {
    super();
    this.addClass('jp-ServeDeployments');
    this.id = 'jupyter-serve-deployments';
    this.title.icon = deploymentsIcon;
    this.title.caption = 'Deployments';
    this._settings = settings;
    this._token = token;
    this.poller = new DeploymentsPoller(() => listDeployments(settings));
  }

  readonly poller: DeploymentsPoller;

  protected render(): JSX.Element {
    const context: IPanelContext = {
      settings: this._settings,
      token: this._token,
      traffic: id => this.poller.history.points(id),
      refresh: () => this.poller.refresh()
    };
    return <DeploymentsView poller={this.poller} context={context} />;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.poller.start();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.poller.stop();
  }

  dispose(): void {
    this.poller.dispose();
    super.dispose();
  }

  private readonly _settings: ServerConnection.ISettings;
  private readonly _token: string | null;
}

function DeploymentsView(props: { poller: DeploymentsPoller; context: IPanelContext }): JSX.Element {
  const { poller, context } = props;
  const [snapshot, setSnapshot] = useState<IDeploymentsSnapshot>(poller.snapshot);
  useEffect(() => poller.subscribe(setSnapshot), [poller]);
  const groups = groupDeployments(snapshot.deployments);
  return (
    <div className="jp-ServeDeployments-body">
      <header className="jp-ServeDeployments-header">
        <h2 className="jp-ServeDeployments-title">Deployments</h2>
        <IconButton icon={refreshIcon} label="Refresh" onClick={() => void context.refresh()} iconOnly />
      </header>
      {snapshot.error && (
        <div className="jp-ServeDeployments-error" role="alert">
          {snapshot.error}
        </div>
      )}
      {!snapshot.loaded && !snapshot.error && <p className="jp-ServeDeployments-note">Loading deployments…</p>}
      {snapshot.loaded && groups.length === 0 && <EmptyState />}
      {groups.map(group => (
        <KernelGroup key={group.key} group={group} context={context} />
      ))}
    </div>
  );
}

function EmptyState(): JSX.Element {
  return (
    <div className="jp-ServeDeployments-empty">
      <p>No model is being served yet.</p>
      <p>In a notebook, load the extension and serve a fitted model:</p>
      <pre className="jp-ServeDeployments-code">{'%load_ext jupyter_serve\n%serve clf'}</pre>
      <p>or a registered one:</p>
      <pre className="jp-ServeDeployments-code">{'%serve models:/spam/Production'}</pre>
      <p>The deployments of every kernel show up here.</p>
    </div>
  );
}

function KernelGroup(props: { group: IDeploymentGroup; context: IPanelContext }): JSX.Element {
  const { group, context } = props;
  return (
    <section className="jp-ServeDeployments-group" aria-label={group.title}>
      <h3 className="jp-ServeDeployments-groupTitle" title={group.detail ?? undefined}>
        {group.title}
      </h3>
      <ul className="jp-ServeDeployments-list">
        {group.deployments.map(deployment => (
          <DeploymentCard key={deployment.id} deployment={deployment} context={context} />
        ))}
      </ul>
    </section>
  );
}

function DeploymentCard(props: { deployment: IDeployment; context: IPanelContext }): JSX.Element {
  const { deployment, context } = props;
  const [stopping, setStopping] = useState(false);
  const [tryOpen, setTryOpen] = useState(false);
  const [sample, setSample] = useState('');
  const [column, setColumn] = useState(textColumnFor(deployment));
  const metrics = deployment.metrics ?? {};
  const kind = stopping ? 'stopped' : statusKind(deployment.status);
  const tryId = `jp-ServeDeployments-try-${deployment.id}`;

  const openPing = (): void => {
    window.open(proxiedUrl(context.settings.baseUrl, deployment, 'ping'), '_blank', 'noopener');
  };
  const copyCurl = (): void => {
    const { body } = buildInvocationBody(sample.trim() ? sample : SAMPLE_TEXT, column);
    const url = proxiedUrl(context.settings.baseUrl, deployment, 'invocations');
    Clipboard.copyToSystem(buildCurl(url, body, context.token));
    Notification.success(`Copied a curl command for ${deployment.name}`, { autoClose: 3000 });
  };
  const stop = async (): Promise<void> => {
    setStopping(true);
    try {
      await stopDeployment(deployment.id, context.settings);
      Notification.success(`Stopped deployment ${deployment.name}`, { autoClose: 3000 });
      await context.refresh();
    } catch (error) {
      setStopping(false);
      Notification.error(error instanceof Error ? error.message : String(error));
      // It may have stopped anyway (or been gone already): show what is true now.
      await context.refresh();
    }
  };

  return (
    <li className="jp-ServeDeployments-card" data-deployment-id={deployment.id}>
      <div className="jp-ServeDeployments-cardHeader">
        <span className={`jp-ServeDeployments-status jp-mod-${kind}`} aria-hidden="true" />
        <span className="jp-ServeDeployments-name">{deployment.name}</span>
        <span className="jp-ServeDeployments-statusText">{stopping ? 'stopping…' : deployment.status}</span>
      </div>
      <div className="jp-ServeDeployments-model" title={deployment.model_uri}>
        {formatModel(deployment)}
      </div>
      {deployment.target && (
        <div className="jp-ServeDeployments-remote" title={deployment.target}>
          {formatRemote(deployment)}
        </div>
      )}
      <dl className="jp-ServeDeployments-metrics">
        <Metric label="requests" value={formatCount(metrics.requests)} />
        <Metric label="errors" value={formatCount(metrics.errors)} />
        <Metric label="p99" value={formatLatency(metrics.latency_ms?.p99)} />
        <Metric label="up" value={formatUptime(deployment.started_at, Date.now())} />
      </dl>
      <TrafficChart chart={prepareChart(context.traffic(deployment.id), 260, 48)} name={deployment.name} />
      <div className="jp-ServeDeployments-actions">
        <IconButton icon={launchIcon} label="Open /ping" onClick={openPing} />
        <IconButton icon={copyIcon} label="Copy curl" onClick={copyCurl} />
        <IconButton
          icon={tryOpen ? caretDownIcon : caretRightIcon}
          label="Try it"
          onClick={() => setTryOpen(!tryOpen)}
          expanded={tryOpen}
          controls={tryId}
        />
        <IconButton
          icon={stopIcon}
          label={stopping ? 'Stopping…' : 'Stop'}
          onClick={() => void stop()}
          disabled={stopping}
          danger
        />
      </div>
      {tryOpen && (
        <TryIt
          id={tryId}
          deployment={deployment}
          context={context}
          sample={sample}
          setSample={setSample}
          column={column}
          setColumn={setColumn}
        />
      )}
    </li>
  );
}

const SERIES_CLASS: Record<string, string> = {
  'requests/s': 'jp-mod-rate',
  p50: 'jp-mod-p50',
  p99: 'jp-mod-p99'
};

function TrafficChart(props: { chart: IPreparedChart; name: string }): JSX.Element {
  const { chart, name } = props;
  const top = 18;
  const gap = 22;
  const height = top + 2 * chart.panelHeight + gap + 26;
  const panels = [chart.rate, chart.latency];
  const series = panels.flatMap(panel => panel.series);
  const drawn = series.some(s => s.points !== '');
  const legend = (value: number | null, unit: string): string =>
    value === null ? '–' : `${Number(value.toPrecision(3))}${unit}`;
  return (
    <figure className="jp-ServeDeployments-chart" aria-label={`Traffic of ${name}`}>
      <ul className="jp-ServeDeployments-legend">
        {series.map(s => (
          <li key={s.name} className={SERIES_CLASS[s.name]}>
            <span className="jp-ServeDeployments-swatch" aria-hidden="true" />
            {s.name} {legend(s.latest, s.name === 'requests/s' ? '' : ' ms')}
          </li>
        ))}
      </ul>
      {!drawn && <p className="jp-ServeDeployments-note">Collecting traffic figures…</p>}
      <svg
        width={chart.width}
        height={height}
        viewBox={`0 0 ${chart.width} ${height}`}
        role="img"
        aria-label="requests per second and p50/p99 latency over the last minutes"
      >
        {panels.map((panel, index) => {
          const offset = top + index * (chart.panelHeight + gap);
          return (
            <g key={panel.title} transform={`translate(0 ${offset})`}>
              <text className="jp-ServeDeployments-chartTitle" x={chart.left} y={-4}>
                {panel.title}
              </text>
              {panel.ticks.map(tick => (
                <g key={tick.value}>
                  <line className="jp-ServeDeployments-grid" x1={chart.left} x2={chart.width - 4} y1={tick.y} y2={tick.y} />
                  <text className="jp-ServeDeployments-tick" x={chart.left - 3} y={tick.y + 3} textAnchor="end">
                    {tick.label}
                  </text>
                </g>
              ))}
              {panel.series
                .filter(s => s.points !== '')
                .map(s => (
                  <polyline key={s.name} className={`jp-ServeDeployments-series ${SERIES_CLASS[s.name]}`} data-series={s.name} points={s.points} />
                ))}
            </g>
          );
        })}
        {chart.timeTicks.map((tick, index) => (
          <text
            key={tick.label}
            className="jp-ServeDeployments-tick"
            x={tick.x}
            y={height - 4}
            textAnchor={index === 0 ? 'end' : 'middle'}
          >
            {tick.label}
          </text>
        ))}
      </svg>
    </figure>
  );
}

function Metric(props: { label: string; value: string }): JSX.Element {
  return (
    <div className="jp-ServeDeployments-metric">
      <dt>{props.label}</dt>
      <dd>{props.value}</dd>
    </div>
  );
}

interface ITryItProps {
  id: string;
  deployment: IDeployment;
  context: IPanelContext;
  sample: string;
  setSample: (value: string) => void;
  column: string;
  setColumn: (value: string) => void;
}

function TryIt(props: ITryItProps): JSX.Element {
  const { id, deployment, context, sample, setSample, column, setColumn } = props;
  const [sending, setSending] = useState(false);
  const [answer, setAnswer] = useState<{ ok: boolean; text: string } | null>(null);

  const send = async (): Promise<void> => {
    setSending(true);
    setAnswer(null);
    try {
      const { body } = buildInvocationBody(sample, column);
      const reply = await invokeDeployment(deployment, body, context.settings);
      const ok = reply.status >= 200 && reply.status < 300;
      setAnswer({ ok, text: `HTTP ${reply.status}\n${formatAnswer(reply.text)}` });
    } catch (error) {
      setAnswer({ ok: false, text: error instanceof Error ? error.message : String(error) });
    } finally {
      setSending(false);
    }
  };

  return (
    <form
      id={id}
      className="jp-ServeDeployments-try"
      onSubmit={event => {
        event.preventDefault();
        void send();
      }}
    >
      <label className="jp-ServeDeployments-label" htmlFor={`${id}-input`}>
        JSON request body or sample text
      </label>
      <textarea
        id={`${id}-input`}
        className="jp-mod-styled jp-ServeDeployments-input"
        rows={4}
        value={sample}
        placeholder={SAMPLE_TEXT}
        onChange={event => setSample(event.target.value)}
      />
      <div className="jp-ServeDeployments-tryRow">
        <label className="jp-ServeDeployments-label" htmlFor={`${id}-column`}>
          Text column
        </label>
        <input
          id={`${id}-column`}
          className="jp-mod-styled jp-ServeDeployments-column"
          value={column}
          onChange={event => setColumn(event.target.value)}
        />
        <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept" disabled={sending}>
          {sending ? 'Sending…' : 'Send'}
        </button>
      </div>
      <pre
        className={`jp-ServeDeployments-answer${answer && !answer.ok ? ' jp-mod-error' : ''}`}
        aria-live="polite"
        aria-label="Answer"
      >
        {answer ? answer.text : sending ? 'Waiting for the answer…' : 'The answer appears here.'}
      </pre>
    </form>
  );
}

interface IIconButtonProps {
  icon: LabIcon;
  label: string;
  onClick: () => void;
  iconOnly?: boolean;
  disabled?: boolean;
  danger?: boolean;
  expanded?: boolean;
  controls?: string;
}

function IconButton(props: IIconButtonProps): JSX.Element {
  const classes = ['jp-ServeDeployments-button'];
  if (props.danger) {
    classes.push('jp-mod-danger');
  }
  return (
    <button
      type="button"
      className={classes.join(' ')}
      onClick={props.onClick}
      disabled={props.disabled}
      title={props.label}
      aria-label={props.iconOnly ? props.label : undefined}
      aria-expanded={props.expanded}
      aria-controls={props.expanded ? props.controls : undefined}
    >
      <props.icon.react tag="span" className="jp-ServeDeployments-buttonIcon" />
      {!props.iconOnly && <span>{props.label}</span>}
    </button>
  );
}
