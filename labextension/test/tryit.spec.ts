import {
  buildCurl,
  buildInvocationBody,
  DEFAULT_TEXT_COLUMN,
  formatAnswer,
  proxiedUrl,
  shellQuote,
  textColumnFor,
  TOKEN_PLACEHOLDER
} from '../src/tryit';
import { execFileSync } from 'child_process';

describe('buildInvocationBody', () => {
  it('sends a JSON object unchanged', () => {
    const body = '{"dataframe_records": [{"text": "hi"}]}';
    expect(buildInvocationBody(`  ${body}\n`, 'text')).toEqual({ body, source: 'json' });
  });

  it('wraps plain text into a one-row dataframe_split on the given column', () => {
    const made = buildInvocationBody('  WIN a FREE prize!\nclick now  ', 'message');
    expect(made.source).toBe('text');
    expect(JSON.parse(made.body)).toEqual({
      dataframe_split: { columns: ['message'], data: [['WIN a FREE prize!\nclick now']] }
    });
  });

  it('treats text that only looks like JSON as text', () => {
    for (const text of ['[URGENT] claim your prize', '{not json', '["a", "b"]', '42']) {
      const made = buildInvocationBody(text, 'text');
      expect(made.source).toBe('text');
      expect(JSON.parse(made.body).dataframe_split.data).toEqual([[text]]);
    }
  });

  it('falls back to the default column when none is given', () => {
    const made = buildInvocationBody('hello', '  ');
    expect(JSON.parse(made.body).dataframe_split.columns).toEqual([DEFAULT_TEXT_COLUMN]);
  });

  it('refuses an empty input with advice', () => {
    expect(() => buildInvocationBody(' \n ', 'text')).toThrow(/paste a JSON request body/);
  });

  it('picks the first known input column, else the default', () => {
    expect(textColumnFor({ input_columns: ['email', 'subject'] })).toBe('email');
    expect(textColumnFor({ input_columns: [] })).toBe(DEFAULT_TEXT_COLUMN);
    expect(textColumnFor({})).toBe(DEFAULT_TEXT_COLUMN);
  });
});

describe('proxiedUrl', () => {
  const base = 'http://127.0.0.1:8888/lab-base/';

  it('resolves the absolute proxy path against the server origin', () => {
    const d = { id: '42-clf', proxy_url: '/lab-base/jupyter-serve/proxy/42-clf/' };
    expect(proxiedUrl(base, d, 'ping')).toBe('http://127.0.0.1:8888/lab-base/jupyter-serve/proxy/42-clf/ping');
    expect(proxiedUrl(base, d, '/invocations')).toBe(
      'http://127.0.0.1:8888/lab-base/jupyter-serve/proxy/42-clf/invocations'
    );
  });

  it('accepts a proxy path without its trailing slash', () => {
    const d = { id: '42-clf', proxy_url: '/lab-base/jupyter-serve/proxy/42-clf' };
    expect(proxiedUrl(base, d, 'ping')).toBe('http://127.0.0.1:8888/lab-base/jupyter-serve/proxy/42-clf/ping');
  });

  it('builds the proxy path under the base URL when the server gave none', () => {
    expect(proxiedUrl(base, { id: '7-a.b', proxy_url: null }, 'ping')).toBe(
      'http://127.0.0.1:8888/lab-base/jupyter-serve/proxy/7-a.b/ping'
    );
  });
});

describe('buildCurl', () => {
  const url = 'http://127.0.0.1:8888/jupyter-serve/proxy/1-clf/invocations';

  it('puts the real token in the header when the page has one', () => {
    const curl = buildCurl(url, '{"inputs": [1]}', 'abc123');
    expect(curl).toContain(`curl -X POST '${url}'`);
    expect(curl).toContain("-H 'Authorization: token abc123'");
    expect(curl).toContain("-H 'Content-Type: application/json'");
    expect(curl).toContain(`-d '{"inputs": [1]}'`);
  });

  it('leaves a placeholder to fill in without a token', () => {
    expect(buildCurl(url, '{}', null)).toContain(`Authorization: token ${TOKEN_PLACEHOLDER}`);
  });

  it('quotes bodies with quotes so a shell passes them through unchanged', () => {
    const body = JSON.stringify({ dataframe_split: { columns: ['text'], data: [["it's $HOME `x` \\ \"q\""]] } });
    const curl = buildCurl(url, body, 't');
    // Let a real shell parse the -d argument back.
    const dArg = curl.split('-d ')[1];
    const echoed = execFileSync('sh', ['-c', `printf %s ${dArg}`]).toString();
    expect(echoed).toBe(body);
  });

  it('quotes single words for POSIX shells', () => {
    expect(shellQuote("a'b")).toBe("'a'\\''b'");
  });
});

describe('formatAnswer', () => {
  it('pretty-prints JSON and leaves other text alone', () => {
    expect(formatAnswer('{"predictions": ["spam"]}')).toBe('{\n  "predictions": [\n    "spam"\n  ]\n}');
    expect(formatAnswer('Request processing time exceeded limit')).toBe(
      'Request processing time exceeded limit'
    );
  });
});
