/* Scaling: per environment its policy (editable; audited), current vs desired replicas
   over time, the load with the forecast band and the capacity, and the decisions with
   their reasons. Reads GET /api/scaling, /api/scaling/chart, /api/scaling/decisions. */
(function () {
  'use strict';
  const { h } = FM;

  function kv(pairs) {
    return h('dl.kv', null, pairs.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }
  function describe(p) {
    const t = p.targets || {};
    const parts = ['min ' + p.min, 'max ' + p.max];
    if (t.cpu != null) parts.push('CPU ' + t.cpu + ' %');
    if (t.rps != null) parts.push(t.rps + ' req/s per instance');
    if (t.p95 != null) parts.push('p95 ' + Math.round(t.p95 * 1000) + ' ms');
    if (t.gpu != null) parts.push('GPU ' + t.gpu + ' %');
    if (t.cpu == null && t.rps == null && t.p95 == null && t.gpu == null) parts.push('CPU 80 % (default)');
    parts.push(p.predictive && p.predictive.enabled ? 'predictive' : 'reactive');
    if (p.schedule) parts.push('schedule “' + p.schedule + '”');
    if (p.dry_run) parts.push('dry-run');
    return parts.join(' · ');
  }
  /** align several [[t, v], ...] lists on one time axis */
  function align(lists) {
    const xs = Array.from(new Set(lists.flatMap((l) => l.map((p) => p[0])))).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const cols = lists.map((l) => {
      const col = xs.map(() => null);
      for (const [t, v] of l) col[index.get(t)] = v;
      return col;
    });
    return [xs, cols];
  }
  function num(v) { return v === '' || v == null ? null : Number(v); }

  function policyForm(env, p, onSaved) {
    const t = (p && p.targets) || {};
    const f = {
      env: h('input', { name: 'env', type: 'text', value: env || '', size: '12', required: true, 'aria-label': 'Environment', readonly: env ? true : undefined }),
      min: h('input', { name: 'min', type: 'number', min: '0', value: p ? String(p.min) : '1', style: 'width:5em', 'aria-label': 'Min' }),
      max: h('input', { name: 'max', type: 'number', min: '1', value: p ? String(p.max) : '10', style: 'width:5em', 'aria-label': 'Max' }),
      cpu: h('input', { name: 'cpu', type: 'number', min: '1', value: t.cpu != null ? String(t.cpu) : '', placeholder: '%', style: 'width:5em', 'aria-label': 'CPU %' }),
      rps: h('input', { name: 'rps', type: 'number', min: '0', step: 'any', value: t.rps != null ? String(t.rps) : '', placeholder: 'req/s', style: 'width:6em', 'aria-label': 'Requests per second per instance' }),
      p95: h('input', { name: 'p95', type: 'number', min: '1', value: t.p95 != null ? String(Math.round(t.p95 * 1000)) : '', placeholder: 'ms', style: 'width:5em', 'aria-label': 'p95 ms' }),
      gpu: h('input', { name: 'gpu', type: 'number', min: '1', value: t.gpu != null ? String(t.gpu) : '', placeholder: '%', style: 'width:5em', 'aria-label': 'GPU %' }),
      schedule: h('input', { name: 'schedule', type: 'text', value: (p && p.schedule) || '', size: '36', placeholder: 'Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0', 'aria-label': 'Schedule' }),
      predictive: h('input', { name: 'predictive', type: 'checkbox' }),
      dry: h('input', { name: 'dry_run', type: 'checkbox' }),
      msg: h('span.small', { 'data-role': 'policy-result' }),
    };
    f.predictive.checked = p ? !!(p.predictive && p.predictive.enabled) : false;
    f.dry.checked = p ? !!p.dry_run : false;
    if (!p) {  // a new policy: predictive on by default for production, as the CLI does
      let touched = false;
      f.predictive.addEventListener('change', () => { touched = true; });
      f.env.addEventListener('input', () => {
        if (!touched) f.predictive.checked = /^prod/i.test(f.env.value.trim());
      });
    }
    async function submit(ev) {
      ev.preventDefault();
      const name = f.env.value.trim();
      const pred = f.predictive.checked;
      const body = {
        min: Number(f.min.value), max: Number(f.max.value),
        targets: { cpu: num(f.cpu.value), rps: num(f.rps.value), p95: f.p95.value ? Number(f.p95.value) / 1000 : null, gpu: num(f.gpu.value) },
        schedule: f.schedule.value.trim() || null,
        predictive: { enabled: pred, utilization: pred ? 0.9 : null },
        dry_run: f.dry.checked,
        behavior: p ? p.behavior : undefined,
        startup: p ? p.startup : 60,
        reason: 'set from the dashboard',
      };
      try {
        await FM.send('PUT', '/api/scaling/policy/' + encodeURIComponent(name), body);
        f.msg.textContent = 'Saved.';
        f.msg.className = 'small ok';
        onSaved();
      } catch (e) {
        f.msg.textContent = e.message;
        f.msg.className = 'small err';
      }
    }
    const lab = (text, el) => h('label.small', { style: 'display:inline-flex;gap:4px;align-items:center' }, text, el);
    return h('form', { onsubmit: submit, 'data-form': 'policy', style: 'display:flex;gap:8px;flex-wrap:wrap;align-items:center' },
      lab('Environment', f.env), lab('Min', f.min), lab('Max', f.max), lab('CPU %', f.cpu), lab('req/s', f.rps),
      lab('p95 ms', f.p95), lab('GPU %', f.gpu), lab('Schedule', f.schedule), lab('Predictive', f.predictive),
      lab('Dry-run', f.dry), h('button', { type: 'submit' }, 'Save policy'), f.msg);
  }

  function mount(ctx) {
    let alive = true;
    let timer = null;
    let last = 0;
    const charts = {};

    function envCard(name, e) {
      const mode = e.dry_run ? h('span.pill.idle', null, 'dry-run') : h('span.pill.up', null, 'applied');
      const f = e.forecast;
      let ftext = 'off (reactive only)';
      if (f && f.peak != null) {
        ftext = 'peak ' + FM.fmt(f.peak, 'req/s') + ' within ' + FM.duration(f.horizon_seconds) +
          ' (median ' + FM.fmt(f.low, 'req/s') + ')' + (f.replicas != null ? ' → ' + f.replicas + ' instances' : '') +
          ' · ' + f.status + (f.error != null ? ' · recent error ' + Math.round(f.error * 100) + ' %' : '');
      } else if (f) {
        ftext = 'not used: ' + f.status + ' (' + FM.duration(f.history_seconds || 0) + ' of history)';
      }
      const i = e.inputs || {};
      const body = h('div.card.pad', { 'data-env': name },
        h('h3', null, name + ' ', mode),
        h('div', { 'data-role': 'replicas', style: 'font-size:1.6em;margin:4px 0' },
          (e.current == null ? '—' : String(e.current)) + ' → ' + (e.desired == null ? '—' : String(e.desired)) + ' instances'),
        kv([
          ['Policy', describe(e.policy)],
          ['Reason', h('strong', { 'data-role': 'reason' }, e.reason || 'not decided yet')],
          ['Why', e.message || '—'],
          ['Inputs', 'CPU ' + FM.fmt(i.cpu, 'percent') + ' · GPU ' + FM.fmt(i.gpu, 'percent') + ' · ' +
            FM.fmt(i.rps, 'req/s') + ' · p95 ' + FM.fmt(i.p95, 'seconds') + ' · ready ' + (i.ready == null ? '—' : i.ready)],
          ['Forecast', ftext],
          ['Applied', e.dry_run ? 'no: ' + e.dry_run_reason : 'yes'],
        ].concat(e.error ? [['Error', h('span.err', null, e.error)]] : [])),
        h('details', null, h('summary', null, 'Edit policy'), policyForm(name, e.policy, load)));
      return body;
    }

    function chartCard(name, key, title) {
      const id = name + ':' + key;
      if (!charts[id]) {
        const el = h('div.chart', { 'data-chart': key, 'data-env': name });
        charts[id] = { card: h('div.card.pad', null, h('h3', null, title + ' · ' + name), el), el, chart: null };
      }
      return charts[id];
    }

    function draw(name, d) {
      const rep = chartCard(name, 'replicas', 'Current vs desired instances');
      const [x1, c1] = align([d.current, d.desired]);
      const s1 = { x: x1, unit: '', lines: [{ label: 'current', values: c1[0] }, { label: 'desired', values: c1[1], dash: true }] };
      if (rep.chart) rep.chart.update(s1); else rep.chart = FM.chart(rep.el, s1);
      const fc = chartCard(name, 'forecast', 'Load, forecast band and capacity');
      const [x2, c2] = align([d.load, d.forecast_low || [], d.forecast_high || [], d.capacity]);
      const s2 = { x: x2, unit: 'req/s', lines: [
        { label: 'load', values: c2[0] }, { label: 'forecast median', values: c2[1], dash: true },
        { label: 'forecast peak (quantile)', values: c2[2], dash: true }, { label: 'capacity at target', values: c2[3] }] };
      if (fc.chart) fc.chart.update(s2); else fc.chart = FM.chart(fc.el, s2);
      return [rep.card, fc.card];
    }

    function decisionsCard(rows) {
      const body = rows.length ? rows.map((r) => {
        const d = r.data;
        return h('tr', { 'data-decision': d.reason },
          h('td', null, FM.time(r.ts)), h('td', null, d.env), h('td.num', null, d.current + ' → ' + d.desired),
          h('td', null, h('strong', null, d.reason)),
          h('td', null, d.applied ? 'applied' : (d.dry_run ? 'dry-run' : 'not applied')),
          h('td.small', null, d.message));
      }) : [h('tr', null, h('td', { colspan: '6', class: 'muted' }, 'No decisions yet.'))];
      return h('div.card.table', { 'data-card': 'decisions' }, h('h3', null, 'Decisions'),
        h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Environment'),
          h('th.num', null, 'Instances'), h('th', null, 'Reason'), h('th', null, 'Applied'), h('th', null, 'Why'))),
        h('tbody', null, body)));
    }

    async function load() {
      try {
        const st = await FM.api('/api/scaling');
        const envs = Object.keys(st.environments);
        const range = ctx.range || '1h';
        const [series, decisions] = await Promise.all([
          Promise.all(envs.map((e) => FM.api('/api/scaling/chart?env=' + encodeURIComponent(e) + '&range=' + range))),
          FM.api('/api/scaling/decisions?limit=50'),
        ]);
        if (!alive) return;
        const editing = document.activeElement && ctx.el.contains(document.activeElement) &&
          document.activeElement.tagName === 'INPUT';
        if (editing) return; // don't redraw under the user's cursor
        const parts = [];
        envs.forEach((name, k) => {
          parts.push(envCard(name, st.environments[name]));
          parts.push(h('div.grid-2', null, ...draw(name, series[k])));
        });
        const fcs = st.forecaster;
        parts.push(h('div.card.pad', { 'data-card': 'forecaster' }, h('h3', null, 'Forecaster'), kv([
          ['Status', fcs.status], ['History', FM.duration(fcs.history_seconds || 0)],
          ['Fitted', fcs.trained_at ? FM.time(fcs.trained_at) : 'not yet'],
          ['Horizon', fcs.horizon_minutes ? fcs.horizon_minutes + ' min' : '—'],
        ])));
        parts.push(decisionsCard(decisions));
        parts.push(h('div.card.pad', { 'data-card': 'new-policy' }, h('h3', null, 'Set a policy'), policyForm('', null, load)));
        if (!envs.length) parts.unshift(h('div.card.pad.muted', null, 'No scaling policy yet: set one below or with `fastmango scale --env=production --min=2 --max=10 --cpu=70%`.'));
        ctx.el.replaceChildren(...parts);
        last = Date.now();
        FM.updated();
      } catch (e) {
        if (String(e.message).includes('404')) {
          ctx.el.replaceChildren(h('div.card.pad.muted', null, 'Scaling is off (scale.enabled = false).'));
        } else FM.banner('Could not load scaling: ' + e.message);
      }
    }
    load();
    return {
      tick() {
        if (timer) return;
        timer = setTimeout(() => { timer = null; load(); }, Math.max(1000, 5000 - (Date.now() - last)));
      },
      range() { load(); },
      unmount() {
        alive = false; clearTimeout(timer);
        for (const c of Object.values(charts)) if (c.chart) c.chart.destroy();
      },
    };
  }

  FM.register({
    id: 'scaling',
    title: 'Scaling',
    order: 40,
    ranged: true,
    icon: '<svg viewBox="0 0 24 24"><path d="M4 20V10M10 20V4M16 20v-7M22 20H2"/></svg>',
    mount,
  });
})();
