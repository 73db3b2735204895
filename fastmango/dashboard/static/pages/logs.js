/* Logs: a search box (the query language of `fastmango logs`), results newest first with
   levels coloured, live tail over Server-Sent Events (/api/logs/tail) with pause, and a
   chart of lines per minute by level (the log_lines_per_minute series). */
(function () {
  'use strict';
  const { h } = FM;
  // in the order of the chart palette: info blue, warn amber, notice green, error red,
  // fatal violet, debug cyan, trace pink, unknown lime
  const LEVELS = ['info', 'warn', 'notice', 'error', 'fatal', 'debug', 'trace', 'unknown'];
  const RANGE_S = { '15m': 900, '1h': 3600, '24h': 86400, '7d': 604800 };
  const MAX_ROWS = 500;
  const STYLE = `
    .logs-bar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
    .logs-bar .search { flex: 1 1 360px; font: 13px var(--mono); padding: 7px 10px; border: 1px solid var(--border);
      border-radius: 8px; background: var(--panel); color: var(--text); }
    table.logs td { vertical-align: top; }
    .logs-behind { color: var(--warn); font-weight: 600; }
    table.logs td.when, table.logs td.src { white-space: nowrap; color: var(--muted); font-size: 12px; }
    table.logs td.text pre { margin: 0; white-space: pre-wrap; word-break: break-word; font: 12px var(--mono); }
    .lv { font: 600 11px var(--mono); padding: 1px 6px; border-radius: 5px; }
    .lv-fatal { color: #fff; background: #7c3aed; } .lv-error { color: var(--bad); background: color-mix(in srgb, var(--bad) 12%, transparent); }
    .lv-warn { color: var(--warn); background: color-mix(in srgb, var(--warn) 14%, transparent); }
    .lv-notice { color: var(--c6); } .lv-info { color: var(--ok); } .lv-debug, .lv-trace, .lv-unknown { color: var(--muted); }
  `;
  if (!document.getElementById('logs-style')) {
    document.head.appendChild(h('style', { id: 'logs-style' }, STYLE));
  }

  function stamp(ts) {
    const d = new Date(ts * 1000);
    return d.toISOString().replace('T', ' ').slice(0, 23);
  }
  function row(line) {
    const lv = line.level || 'unknown';
    return h('tr', { 'data-level': lv, 'data-id': String(line.id) },
      h('td.mono.when', null, stamp(line.ts)),
      h('td', null, h('span.lv.lv-' + lv, null, lv === 'unknown' ? '—' : lv.toUpperCase())),
      h('td.mono.src', { title: line.source || '' },
        (line.instance ? line.instance + ' · ' : '') + (line.source || '').split('/').pop()),
      h('td.mono.text', null, h('pre', null, line.text)));
  }

  function mount(ctx) {
    let alive = true;
    let es = null;
    let paused = false;
    let chart = null;
    let timer = null;
    const input = h('input.search', { type: 'search', name: 'q', placeholder: 'level:error "timed out" status>=500 /regex/ …',
      'aria-label': 'Search logs', autocomplete: 'off', spellcheck: 'false' });
    const since = h('select', { name: 'since', 'aria-label': 'Since' },
      ['15m', '1h', '24h', '7d', ''].map((v) => h('option', { value: v }, v ? 'last ' + v : 'all time')));
    since.value = '';
    const fleetBox = h('input', { type: 'checkbox', name: 'fleet' });
    const fleetLabel = h('label.small', { title: 'Search every agent of the fleet, merged by time' },
      fleetBox, ' all agents');
    const go = h('button.btn', { type: 'submit' }, 'Search');
    const tailBtn = h('button.btn', { type: 'button', 'data-action': 'tail', 'aria-pressed': 'false' }, 'Live tail');
    const pauseBtn = h('button.btn', { type: 'button', 'data-action': 'pause', hidden: true }, 'Pause');
    const info = h('span.small.muted', { 'data-info': 'results' }, '');
    const error = h('div.err', { 'data-error': 'query', hidden: true });
    const state = h('div.small.muted', { 'data-info': 'index' }, '');
    const tbody = h('tbody');
    const form = h('form.logs-bar', null, input, since, fleetLabel, go, tailBtn, pauseBtn, info);
    const chartEl = h('div.chart', { 'data-chart': 'log-lines' });
    const chartCard = h('div.card.pad', { 'data-card': 'log-rate' }, h('h3', null, 'Lines per minute by level'), chartEl);
    const results = h('div.card.table', { 'data-card': 'log-results' },
      h('table.list.logs', null, h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Level'),
        h('th', null, 'Source'), h('th', null, 'Line'))), tbody));
    ctx.el.replaceChildren(h('div.card.pad', null, form, error, state), chartCard, results);

    function showError(msg) {
      error.hidden = !msg;
      error.textContent = msg || '';
    }
    function qs(extra) {
      const p = new URLSearchParams(Object.assign({ q: input.value }, extra || {}));
      return p.toString();
    }
    async function search() {
      stopTail();
      showError('');
      const params = { limit: '200', count: 'true' };
      if (since.value) params.since = since.value;
      if (fleetBox.checked) params.fleet = 'true';
      try {
        const d = await FM.api('/api/logs/search?' + qs(params));
        if (!alive) return;
        tbody.replaceChildren(...d.lines.map(row));
        const empty = d.partial
          ? 'No matching lines found before the search stopped (logs.query_timeout): narrow the time range.'
          : 'No matching lines.';
        if (!d.lines.length) tbody.replaceChildren(h('tr', null, h('td.muted', { colspan: '4' }, empty)));
        info.textContent = d.count.toLocaleString('en') + (d.exact ? '' : '+') + ' matching' +
          (d.instances ? ' on ' + d.instances.filter((i) => i.ok).length + ' agent(s)'
            : ' · ' + d.took_ms.toFixed(1) + ' ms') +
          (d.partial || !d.exact ? ' · stopped early: narrow the time range for all' : '');
        FM.updated();
      } catch (e) {
        showError(e.message.replace(/^\/api\/logs\/search: /, ''));
      }
    }
    function stopTail() {
      if (es) { es.close(); es = null; }
      tailBtn.setAttribute('aria-pressed', 'false');
      tailBtn.textContent = 'Live tail';
      pauseBtn.hidden = true;
    }
    function startTail() {
      showError('');
      paused = false;
      pauseBtn.textContent = 'Pause';
      tbody.replaceChildren();
      es = new EventSource('/api/logs/tail?' + qs({ backlog: '50' }));
      tailBtn.setAttribute('aria-pressed', 'true');
      tailBtn.textContent = 'Stop tail';
      pauseBtn.hidden = false;
      info.textContent = 'following…';
      es.addEventListener('line', (ev) => {
        if (paused) return;
        const line = JSON.parse(ev.data);
        tbody.prepend(row(line));
        while (tbody.children.length > MAX_ROWS) tbody.lastChild.remove();
      });
      es.onerror = () => {
        // a bad query answers 400 before the stream opens: show why
        fetch('/api/logs/tail?' + qs(), { credentials: 'same-origin' }).then(async (r) => {
          if (r.status >= 400) {
            let d = r.statusText;
            try { d = (await r.json()).detail || d; } catch (e) { /* not JSON */ }
            showError(d);
            stopTail();
          }
        }).catch(() => {});
      };
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); search(); });
    tailBtn.addEventListener('click', () => { if (es) stopTail(); else startTail(); });
    pauseBtn.addEventListener('click', () => {
      paused = !paused;
      pauseBtn.textContent = paused ? 'Resume' : 'Pause';
      info.textContent = paused ? 'paused' : 'following…';
    });

    async function loadChart() {
      const span = RANGE_S[ctx.range] || 3600;
      try {
        const d = await FM.api('/api/series?name=log_lines_per_minute&start=' + span + 's&step=' +
          Math.max(10, Math.round(span / 300)) + 's');
        if (!alive) return;
        const xs = new Set();
        d.series.forEach((s) => s.points.forEach((p) => xs.add(p[0])));
        const x = Array.from(xs).sort((a, b) => a - b);
        const lines = [];
        LEVELS.forEach((lv) => {
          const s = d.series.find((r) => (r.labels || {}).level === lv);
          const m = new Map(s ? s.points.map((p) => [p[0], p[1]]) : []);
          lines.push({ label: lv, values: x.map((t) => (m.has(t) ? m.get(t) : null)) });
        });
        const spec = { x, lines, unit: '' };
        if (!chart) { chartEl.replaceChildren(); chart = FM.chart(chartEl, spec); } else chart.update(spec);
      } catch (e) {
        chartEl.textContent = 'No log series yet: ' + e.message;
      }
    }
    // the index at a glance, and whether the agent keeps up with the app's log files
    async function loadState() {
      try {
        const r = await fetch('/api/logs/status', { credentials: 'same-origin' });
        const d = await r.json();
        if (!alive) return;
        if (r.status === 404) { showError(d.detail); return; }
        if (!r.ok) return;
        const ix = d.index || {};
        const open = (d.files || []).filter((f) => f.open).length;
        state.replaceChildren('Index: ' + (ix.lines || 0).toLocaleString('en') + ' lines · ' +
          FM.fmt(ix.size_bytes || 0, 'bytes') + ' of ' + FM.fmt(ix.max_bytes || 0, 'bytes') +
          (open ? ' · following ' + open + (open === 1 ? ' file' : ' files') : ''));
        if ((d.behind_bytes || 0) >= 1 << 20) {
          state.append(' · ', h('span.logs-behind', { 'data-info': 'behind' }, FM.fmt(d.behind_bytes, 'bytes') +
            ' of the files not indexed yet: the app writes faster than the agent reads'));
        }
      } catch (e) { /* the next refresh tries again */ }
    }
    search();
    loadChart();
    loadState();
    timer = setInterval(() => { loadChart(); loadState(); }, 15000);
    return {
      range() { loadChart(); },
      unmount() { alive = false; stopTail(); clearInterval(timer); if (chart) chart.destroy(); },
    };
  }

  FM.register({
    id: 'logs',
    title: 'Logs',
    order: 20,
    ranged: true,
    icon: '<svg viewBox="0 0 24 24"><path d="M5 4h14v16H5z"/><path d="M8 8h8M8 12h8M8 16h5"/></svg>',
    mount,
  });
})();
