/* fastmango dashboard shell: page registry, hash router, range picker, API helpers,
   uPlot charts and the live event stream. Plain JS, no build step.
   A page is one file in static/pages/ that calls FM.register({...}); see pages/agent.js.
   The server lists every page (id, title, order, icon) in a manifest, so the nav is drawn
   at once; a page's own file is loaded when the page is first opened. */
(function () {
  'use strict';

  const RANGES = ['15m', '1h', '24h', '7d'];
  const FM = (window.FM = { pages: [], range: '1h', csrf: '', session: null });
  let current = null; // {page, ctl}
  let started = false;

  // ---- DOM helpers ---------------------------------------------------------------
  const $ = (sel, root) => (root || document).querySelector(sel);
  /** h('div.card', {title: 'x'}, child, 'text') — text is never parsed as HTML */
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split('.');
    const el = document.createElement(tag || 'div');
    if (classes.length) el.className = classes.join(' ');
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'html') el.innerHTML = v; // only for our own static SVG icons
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  /** text with setting names (collectors.app.metrics_urls, FASTMANGO_X) set in <code> */
  function withCode(text) {
    const out = [];
    const re = /([a-z_]+(?:\.[a-z_]+)+|\b[a-z]+_url\b|FASTMANGO_[A-Z_]+)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      out.push(text.slice(last, m.index), h('code', null, m[0]));
      last = m.index + m[0].length;
    }
    out.push(text.slice(last));
    return out;
  }
  FM.h = h;
  FM.$ = $;
  FM.withCode = withCode;

  // ---- formatting ----------------------------------------------------------------
  function sig(v, digits) {
    if (!isFinite(v)) return '—';
    const a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1000) return Math.round(v).toLocaleString('en');
    return Number(v.toPrecision(digits || 3)).toString();
  }
  function bytes(v, suffix) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return sig(Math.sign(v) * x) + ' ' + units[i] + (suffix || '');
  }
  /** [number text, unit text] for a value of a unit */
  function parts(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return ['—', ''];
    switch (unit) {
      case 'percent': return [sig(v, v < 10 ? 2 : 3), '%'];
      case 'ratio': return [sig(v * 100, v < 0.1 ? 2 : 3), '%'];
      case 'seconds':
        if (Math.abs(v) < 1) return [sig(v * 1000), 'ms'];
        return [sig(v), 's'];
      case 'bytes': { const s = bytes(v).split(' '); return [s[0], s[1]]; }
      case 'bytes/s': { const s = bytes(v, '/s').split(' '); return [s[0], s[1]]; }
      case 'req/s': return [sig(v), 'req/s'];
      default: return [sig(v), ''];
    }
  }
  FM.parts = parts;
  FM.fmt = (v, unit) => parts(v, unit).join(' ').trim();
  FM.ago = (ts) => {
    if (!ts) return 'never';
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 60) return Math.round(s) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h ago';
    return (s / 86400).toFixed(1) + ' d ago';
  };
  FM.duration = (s) => {
    if (s < 120) return Math.round(s) + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  };
  FM.time = (ts) => new Date(ts * 1000).toLocaleString();

  // ---- API -----------------------------------------------------------------------
  function toLogin() {
    location.href = '/login?next=' + encodeURIComponent('/' + location.hash);
  }
  FM.api = async function (path, opts) {
    const o = opts || {};
    const headers = Object.assign({ Accept: 'application/json' }, o.headers || {});
    const r = await fetch(path, Object.assign({}, o, { headers, credentials: 'same-origin' }));
    if (r.status === 401) { toLogin(); throw new Error('signed out'); }
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(path.split('?')[0] + ': ' + r.status + ' ' + detail);
    }
    return r.json();
  };
  /** a state-changing request: carries the session's CSRF token */
  FM.send = function (method, path, body) {
    return FM.api(path, {
      method,
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': FM.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  FM.post = (path, body) => FM.send('POST', path, body);

  function banner(message) {
    const b = $('#banner');
    b.hidden = !message;
    b.textContent = message || '';
  }
  FM.banner = banner;
  FM.updated = function () {
    $('#updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
  };

  // ---- charts (uPlot) ------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const PALETTE = ['--c1', '--c2', '--c3', '--c5', '--c6', '--c7', '--c8', '--c4'];

  function axis(unit, side) {
    return {
      side,
      stroke: css('--axis'),
      grid: { show: side !== 1, stroke: css('--grid'), width: 1 },
      ticks: { show: false },
      size: 62,
      font: '11px ' + css('--font'),
      values: (u, vals) => vals.map((v) => FM.fmt(v, unit)),
    };
  }
  function fill(color) {
    return color.startsWith('#') && color.length === 7 ? color + '1f' : undefined;
  }
  /** legend values: at the cursor, else the latest value of the line */
  function legendValue(unit) {
    return (u, v, si, idx) => {
      if (idx === null || idx === undefined) {
        const d = u.data[si];
        for (let i = d.length - 1; i >= 0; i--) if (d[i] !== null) return FM.fmt(d[i], unit);
        return '—';
      }
      return v === null ? '—' : FM.fmt(v, unit);
    };
  }
  const xValue = (u, v) => (v === null || v === undefined ? 'latest'
    : new Date(v * 1000).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }));
  /** chart data → [uPlot options' series, data arrays] */
  function build(spec) {
    const series = [{ label: 'Time', value: xValue }];
    const data = [spec.x];
    spec.lines.forEach((ln, i) => {
      const color = css(PALETTE[i % PALETTE.length]);
      series.push({
        label: ln.label,
        stroke: color,
        width: 1.6,
        fill: spec.lines.length <= 2 && !ln.dash && ln.axis !== 'right' ? fill(color) : undefined,
        dash: ln.dash ? [5, 4] : undefined,
        scale: ln.axis === 'right' ? 'y2' : 'y',
        spanGaps: true, // uPlot's default points show where data is sparse (a young agent)
        value: legendValue(ln.axis === 'right' ? spec.right_unit : spec.unit),
      });
      data.push(ln.values);
    });
    for (const t of spec.thresholds || []) {
      series.push({
        label: t.label, stroke: css('--threshold'), width: 1, dash: [3, 3], points: { show: false },
        value: () => FM.fmt(t.value, spec.unit),
      });
      data.push(spec.x.map(() => t.value));
    }
    if (spec.x.length === 1) {
      // one point in time alone (a young agent): a minute either side, where uPlot's
      // own range for a single second-based time would span years
      const t = spec.x[0];
      return [series, data.map((col, i) => (i === 0 ? [t - 60, t, t + 60] : [null, col[0], null]))];
    }
    return [series, data];
  }
  function signature(spec) {
    return spec.unit + '|' + spec.lines.map((l) => l.label + l.axis).join(',') + '|' +
      (spec.thresholds || []).length;
  }
  /** A chart in `el` that `update(spec)` redraws; spec = {x, lines, unit, thresholds} */
  FM.chart = function (el, spec) {
    let u = null;
    let sig0 = '';
    const height = spec.height || 200;
    function create(s) {
      if (u) u.destroy();
      const [series, data] = build(s);
      const axes = [{ stroke: css('--axis'), grid: { stroke: css('--grid'), width: 1 }, ticks: { show: false },
        font: '11px ' + css('--font') }, axis(s.unit, 3)];
      if (s.right_unit) axes.push(axis(s.right_unit, 1));
      const zero = (u2, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1];
      u = new uPlot({
        width: Math.max(200, el.clientWidth), height,
        series, axes,
        scales: { x: { time: true }, y: { range: zero }, y2: { range: zero } },
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        legend: { live: true },
      }, data, el);
      sig0 = signature(s);
    }
    function update(s) {
      if (!u || signature(s) !== sig0) create(s);
      else u.setData(build(s)[1]);
      const first = s.lines[0] ? s.lines[0].values : [];
      let last = null;
      let n = 0;
      first.forEach((v, i) => { if (v !== null) { n++; last = s.x[i]; } });
      el.dataset.points = String(n);
      el.dataset.lastX = last === null ? '' : String(last);
    }
    update(spec);
    const ro = new ResizeObserver(() => { if (u) u.setSize({ width: Math.max(200, el.clientWidth), height }); });
    ro.observe(el);
    return {
      update,
      redraw: () => create(spec),
      destroy() { ro.disconnect(); if (u) u.destroy(); u = null; },
      get plot() { return u; },
    };
  };

  // ---- live stream ---------------------------------------------------------------
  let stream = null;
  function live(state, text) {
    const el = $('#live');
    el.dataset.state = state;
    $('#live-text').textContent = text;
  }
  function connect() {
    if (!window.EventSource) return live('down', 'No live updates');
    stream = new EventSource('/api/stream');
    stream.addEventListener('hello', () => { live('live', 'Live'); banner(''); });
    stream.addEventListener('collect', (e) => {
      live('live', 'Live');
      let data = {};
      try { data = JSON.parse(e.data); } catch (err) { /* keep going */ }
      if (current && current.ctl && current.ctl.tick) current.ctl.tick(data);
    });
    stream.onerror = () => {
      live('down', 'Reconnecting…');
      if (stream.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    };
  }

  // ---- router --------------------------------------------------------------------
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [id, query] = raw.split('?');
    const params = new URLSearchParams(query || '');
    return { id: id || (FM.pages[0] && FM.pages[0].id), params };
  }
  FM.go = function (id, params) {
    const q = params ? '?' + new URLSearchParams(params).toString() : '';
    location.hash = '#/' + id + q;
  };

  function renderNav(activeId) {
    const nav = $('#nav');
    nav.replaceChildren(...FM.pages.map((p) => h('a', {
      href: '#/' + p.id, 'data-page': p.id, 'aria-current': p.id === activeId ? 'page' : null,
    }, h('span.icon', { html: p.icon || '', 'aria-hidden': 'true' }), p.title)));
  }

  function renderRanges(page) {
    const box = $('#ranges');
    box.hidden = !page.ranged;
    for (const b of box.querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(b.dataset.range === FM.range));
    }
  }

  /** a page's code, loaded on its first visit (the nav comes from the manifest) */
  const loading = {};
  function load(page) {
    if (page.mount) return Promise.resolve(page);
    if (!loading[page.id]) {
      loading[page.id] = new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = page.src;
        s.onload = () => resolve();
        s.onerror = () => { delete loading[page.id]; reject(new Error('could not load ' + page.title)); };
        document.head.append(s);
      });
    }
    return loading[page.id].then(() => FM.pages.find((p) => p.id === page.id));
  }

  let routing = 0;
  async function route() {
    const { id, params } = parseHash();
    let page = FM.pages.find((p) => p.id === id) || FM.pages[0];
    if (!page) return;
    const seq = ++routing;
    try {
      page = await load(page);
    } catch (e) {
      banner(e.message + '; is the agent still running?');
      return;
    }
    if (seq !== routing) return; // the user went elsewhere meanwhile
    const r = params.get('range');
    if (r && RANGES.includes(r)) { FM.range = r; localStorage.setItem('fm.range', r); }
    if (current && current.page === page) {
      if (current.ctl && current.ctl.range) current.ctl.range(FM.range);
      renderRanges(page);
      return;
    }
    if (current && current.ctl && current.ctl.unmount) current.ctl.unmount();
    banner('');
    $('#title').textContent = page.title;
    document.title = page.title + ' · fastmango';
    renderNav(page.id);
    renderRanges(page);
    const el = $('#page');
    el.replaceChildren();
    el.dataset.page = page.id;
    current = { page, ctl: null };
    try {
      current.ctl = page.mount({ el, range: FM.range, params });
    } catch (e) {
      banner('This page failed: ' + e.message);
    }
  }

  FM.register = function (page) {
    const known = FM.pages.find((p) => p.id === page.id);
    if (known) page = Object.assign({}, known, page);
    FM.pages = FM.pages.filter((p) => p.id !== page.id).concat([page]);
    FM.pages.sort((a, b) => (a.order || 100) - (b.order || 100));
    if (started) renderNav(current && current.page.id);
  };

  async function start() {
    const manifest = document.getElementById('fm-pages');
    if (manifest) JSON.parse(manifest.textContent).forEach((entry) => FM.register(entry));
    started = true;
    const stored = localStorage.getItem('fm.range');
    if (stored && RANGES.includes(stored)) FM.range = stored;
    const meta = document.querySelector('meta[name="csrf-token"]');
    FM.csrf = meta ? meta.content : '';
    $('#ranges').addEventListener('click', (e) => {
      const r = e.target.dataset && e.target.dataset.range;
      if (r) FM.go(current.page.id, { range: r });
    });
    $('#logout').addEventListener('click', async () => {
      try { await FM.post('/logout'); } catch (e) { /* signed out anyway */ }
      location.href = '/login';
    });
    window.addEventListener('hashchange', route);
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
      if (current && current.ctl && current.ctl.restyle) current.ctl.restyle();
    });
    route();
    connect();
    try {
      FM.session = await FM.api('/api/session');
      if (FM.session.csrf) FM.csrf = FM.session.csrf;
      $('#logout').hidden = !FM.session.login_required || FM.session.via !== 'session';
    } catch (e) { /* the page shows its own errors */ }
  }
  document.addEventListener('DOMContentLoaded', start);
})();
