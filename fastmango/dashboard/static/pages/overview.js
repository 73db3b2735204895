/* Overview: headline figures and every chart of /api/dashboard/overview, live. */
(function () {
  'use strict';
  const { h } = FM;
  const SECTIONS = { app: 'Application', system: 'System', gpu: 'GPU', postgres: 'PostgreSQL' };
  const HEADLINE = [
    { key: 'requests', label: 'Requests', sub: () => 'per second, now' },
    { key: 'p95', label: 'p95 latency', sub: (v) => (v === null ? 'SLO 200 ms' : v <= 0.2 ? 'within the 200 ms SLO' : 'over the 200 ms SLO') },
    { key: 'errors', label: 'Error ratio', sub: () => '5xx share of requests' },
    { key: 'cpu', label: 'CPU', sub: () => 'of the container limit', bar: true },
    { key: 'memory', label: 'Memory', sub: () => 'of the container limit', bar: true },
  ];
  // ms between chart refreshes per range; the headline follows every collection
  const CHART_EVERY = { '15m': 1000, '1h': 5000, '24h': 30000, '7d': 60000 };

  function mount(ctx) {
    let range = ctx.range;
    let doc = null;
    const charts = {}; // panel id → {card, body, chart, state}
    let lastCharts = 0;
    let timer = null;
    let inflight = false;
    let alive = true;
    const stats = {};

    const head = h('div.headline', { 'data-testid': 'headline' });
    for (const s of HEADLINE) {
      const value = h('div.value', null, '—');
      const sub = h('div.sub');
      const bar = s.bar ? h('div.bar', null, h('i', { style: 'width:0' })) : null;
      const card = h('div.card.stat.na', { 'data-stat': s.key }, h('div.label', null, s.label), value, sub, bar);
      stats[s.key] = { card, value, sub, bar, def: s };
      head.append(card);
    }
    const sections = h('div.sections');
    ctx.el.append(head, sections);

    function renderHeadline(hl) {
      for (const [key, st] of Object.entries(stats)) {
        const item = hl[key] || { value: null, unit: '', available: false };
        const [num, unit] = FM.parts(item.value, item.unit);
        st.value.replaceChildren(num, unit ? h('span.unit', null, unit) : '');
        st.card.classList.toggle('na', item.value === null);
        st.card.dataset.value = item.value === null ? '' : String(item.value);
        st.sub.textContent = !item.available ? (key === 'cpu' || key === 'memory' ? 'container collector off' : 'app metrics not configured')
          : item.value === null ? 'no data yet' : st.def.sub(item.value);
        if (st.bar) {
          const pct = Math.max(0, Math.min(100, (item.value || 0) * 100));
          const i = st.bar.firstChild;
          i.style.width = pct + '%';
          i.className = pct >= 90 ? 'bad' : pct >= 70 ? 'warn' : '';
        }
      }
    }

    function section(id) {
      let s = sections.querySelector('[data-section="' + id + '"]');
      if (!s) {
        s = h('div', { 'data-section': id }, h('h2.section', null, SECTIONS[id] || id), h('div.charts'));
        sections.append(s);
      }
      return s.lastChild;
    }

    function renderPanels(d) {
      const seen = new Set();
      for (const p of d.panels) {
        seen.add(p.id);
        let c = charts[p.id];
        if (!c) {
          const now = h('span.now');
          const body = h('div.chart', { 'data-chart': p.id });
          const card = h('div.card.chart-card', { 'data-panel': p.id },
            h('div.chart-head', null, h('h3', null, p.title), now), h('div.desc', null, p.description), body);
          section(p.section).append(card);
          c = charts[p.id] = { card, body, now, chart: null, state: '' };
        }
        c.card.dataset.state = p.state;
        if (p.state !== 'ok') {
          if (c.chart) { c.chart.destroy(); c.chart = null; }
          if (c.state !== p.state || c.body.dataset.hint !== p.hint) {
            c.body.replaceChildren(h('div.empty', null, h('span', null, FM.withCode(p.hint))));
            c.body.dataset.hint = p.hint;
          }
          c.now.textContent = '';
        } else {
          const spec = { x: d.x, lines: p.lines, unit: p.unit, right_unit: p.right_unit, thresholds: p.thresholds };
          if (!c.chart) { c.body.replaceChildren(); c.chart = FM.chart(c.body, spec); } else c.chart.update(spec);
          c.now.textContent = FM.fmt(p.now, p.unit);
        }
        c.state = p.state;
      }
      for (const id of Object.keys(charts)) {
        if (!seen.has(id)) {
          if (charts[id].chart) charts[id].chart.destroy();
          charts[id].card.remove();
          delete charts[id];
        }
      }
      ctx.el.dataset.range = d.range;
      ctx.el.dataset.source = d.source;
    }

    async function load(headlineOnly) {
      if (inflight || !alive) return;
      inflight = true;
      const want = range;
      try {
        const part = headlineOnly ? '&parts=headline' : '';
        const d = await FM.api('/api/dashboard/overview?range=' + encodeURIComponent(want) + part);
        if (!alive || want !== range) return;
        renderHeadline(d.headline);
        if (!headlineOnly) { doc = d; renderPanels(d); lastCharts = Date.now(); }
        ctx.el.dataset.loads = String(Number(ctx.el.dataset.loads || 0) + 1);
        FM.updated();
        FM.banner('');
      } catch (e) {
        FM.banner('Could not load the overview: ' + e.message);
      } finally {
        inflight = false;
      }
    }

    load(false);
    return {
      tick() {
        if (timer) return; // debounce: one refresh per burst of collections
        timer = setTimeout(() => {
          timer = null;
          load(Date.now() - lastCharts < CHART_EVERY[range]);
        }, 250);
      },
      range(r) {
        if (r === range) return;
        range = r;
        inflight = false;
        load(false);
      },
      restyle() { for (const c of Object.values(charts)) if (c.chart) c.chart.redraw(); if (doc) renderPanels(doc); },
      unmount() {
        alive = false;
        clearTimeout(timer);
        for (const c of Object.values(charts)) if (c.chart) c.chart.destroy();
      },
    };
  }

  FM.register({
    id: 'overview',
    title: 'Overview',
    order: 10,
    ranged: true,
    icon: '<svg viewBox="0 0 24 24"><path d="M3 12h4l3-8 4 16 3-8h4"/></svg>',
    mount,
  });
})();
