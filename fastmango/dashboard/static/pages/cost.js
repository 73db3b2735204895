/* Cost: per environment this month's spend to date against the projection and the budget
   (bars), spend over the month with the projection to month end (chart), and savings with
   the evidence each rests on. Reads /api/cost and /api/cost/savings. */
(function () {
  'use strict';
  const { h } = FM;
  const money = (v) => (v === null || v === undefined ? 'unknown' : '$' + Number(v).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const KINDS = { rightsize: 'Right-size', 'idle-schedule': 'Idle schedule', predictive: 'Predictive scaling', platform: 'Platform' };

  /** one environment: figures and a bar (spent, projected, budget marker) */
  function envCard(r, scale) {
    const pct = (v) => (scale > 0 && v !== null && v !== undefined ? Math.min(100, (100 * v) / scale) : 0);
    const spent = pct(r.month_to_date);
    const proj = pct(r.projected);
    const over = r.over_budget;
    const track = h('div.cost-bar', {
      role: 'img', 'data-role': 'bar',
      'aria-label': r.env + ': ' + money(r.month_to_date) + ' to date, ' + money(r.projected) + ' projected' +
        (r.budget !== null ? ', budget ' + money(r.budget) : ''),
      style: 'position:relative;height:18px;border-radius:4px;background:var(--panel-2);border:1px solid var(--border);margin:10px 0 6px;overflow:visible',
    },
    h('i', { 'data-part': 'projected', style: 'position:absolute;left:0;top:0;bottom:0;width:' + proj.toFixed(2) + '%;border-radius:3px;background:color-mix(in srgb,' + (over ? 'var(--bad)' : 'var(--c1)') + ' 28%,transparent)' }),
    h('i', { 'data-part': 'spent', style: 'position:absolute;left:0;top:0;bottom:0;width:' + spent.toFixed(2) + '%;border-radius:3px;background:' + (over ? 'var(--bad)' : 'var(--c1)') }),
    r.budget !== null ? h('b', { 'data-part': 'budget', title: 'budget ' + money(r.budget), style: 'position:absolute;top:-4px;bottom:-4px;width:2px;background:var(--text,#1b2230);left:calc(' + pct(r.budget).toFixed(2) + '% - 1px)' }) : null);
    const figures = h('dl.kv', null,
      h('dt', null, 'To date'), h('dd', { 'data-figure': 'mtd' }, money(r.month_to_date)),
      h('dt', null, 'Projected'), h('dd', { 'data-figure': 'projected' }, money(r.projected)),
      h('dt', null, 'Budget'), h('dd', { 'data-figure': 'budget' }, r.budget === null ? 'none set' : money(r.budget)),
      h('dt', null, 'Running'), h('dd', null, (r.replicas === null ? '?' : r.replicas) + ' × ' + (r.size || '?') + ' on ' + r.platform));
    const notes = [];
    for (const u of r.unknown) notes.push(h('li', { 'data-unknown': '' }, 'unknown: ' + u));
    for (const n of r.notes) notes.push(h('li', null, n));
    if (r.projection) notes.push(h('li.muted', null, 'projection: ' + r.projection));
    const state = over ? h('span.pill.down', null, 'over budget') : !r.complete ? h('span.pill.idle', null, r.month_to_date === null ? 'unknown' : 'partial') : h('span.pill.up', null, 'complete');
    return h('div.card.pad', { 'data-env': r.env, 'data-over': String(!!over) },
      h('h3', null, r.env + ' ', h('span.muted.small', null, r.service !== r.env ? '(' + r.service + ') ' : ''), state),
      track, figures, notes.length ? h('ul.small', null, notes) : null);
  }

  function chartSpec(rows) {
    const known = rows.filter((r) => r.month_to_date !== null);
    if (!known.length) return null;
    const x = known[0].series.t;
    const lines = [];
    for (const r of known) {
      lines.push({ label: r.env + ' spent', values: r.series.actual });
      lines.push({ label: r.env + ' projected', values: r.series.projected, dash: true });
    }
    const thresholds = known.filter((r) => r.budget !== null).map((r) => ({ label: r.env + ' budget', value: r.budget }));
    return { x, lines, unit: '', thresholds, height: 260 };
  }

  function evidenceList(ev) {
    const items = [];
    for (const [k, v] of Object.entries(ev)) {
      if (v === null || v === undefined) continue;
      let text;
      if (Array.isArray(v)) {
        text = v.map((o) => (typeof o === 'object' ? Object.entries(o).filter(([, x]) => x !== null).map(([a, b]) => a + ' ' + b).join(', ') : String(o))).join(' · ');
      } else if (typeof v === 'object') {
        text = Object.entries(v).filter(([, x]) => x !== null).map(([a, b]) => a + ' ' + b).join(', ');
      } else text = String(v);
      items.push(h('dt', null, k.replace(/_/g, ' ')), h('dd', null, text));
    }
    return h('dl.kv.small', { 'data-evidence': '' }, items);
  }

  function savingsCard(doc) {
    const rows = doc.savings.map((s) => h('div.card.pad', { 'data-saving': s.kind, 'data-env': s.env },
      h('h3', null, h('span.pill.up', null, money(s.dollars_per_month) + '/month'), ' ', s.title),
      h('div.small.muted', null, (KINDS[s.kind] || s.kind) + ' · ' + s.env),
      evidenceList(s.evidence),
      h('div.small', null, 'Do: ', h('code', null, s.action))));
    const skipped = doc.skipped.length ? h('details.small', null, h('summary', null, 'Checked without a saving (' + doc.skipped.length + ')'),
      h('ul', null, doc.skipped.map((x) => h('li', null, x.env + ' · ' + x.kind + ': ' + x.reason)))) : null;
    return h('div', { 'data-card': 'savings' },
      h('h2.section', null, 'Savings ', h('span.muted.small', null, money(doc.total_dollars_per_month) + ' per month or more over ' + doc.savings.length +
        ' suggestion(s), measured over the last ' + FM.duration(doc.window_hours * 3600) + ' (one environment\'s savings overlap: the total takes the largest of each)')),
      doc.savings.length ? rows : h('div.card.pad.muted', null, 'No savings found.'), skipped);
  }

  function staleCard(bill) {
    if (!bill.stale_prices.length) return null;
    return h('div.card.table', { 'data-card': 'stale' }, h('h3', null, 'Prices read over ' + bill.stale_after_days + ' days ago'),
      h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'Price'), h('th.num', null, 'Value'), h('th', null, 'As of'), h('th', null, 'Source'))),
        h('tbody', null, bill.stale_prices.map((e) => h('tr', { 'data-stale': e.key }, h('td', null, h('span.mono', null, e.key)),
          h('td.num', null, String(e.value)), h('td', null, e.as_of + ' (' + Math.round(e.age_days) + ' d)'), h('td.small', null, e.source))))));
  }

  function mount(ctx) {
    let alive = true;
    let chart = null;
    let timer = null;
    const top = h('div', { 'data-card': 'environments' });
    const chartBody = h('div.chart', { 'data-chart': 'cost-month' });
    const chartCard = h('div.card.chart-card', { 'data-panel': 'cost-month' },
      h('div.chart-head', null, h('h3', null, 'Spend over the month'), h('span.now')),
      h('div.desc', null, 'Cumulative spend to date (solid) and projected to month end from the seasonal load profile (dashed); budgets as lines.'),
      chartBody);
    const rest = h('div');
    ctx.el.append(top, chartCard, rest);

    function render(bill, sav) {
      const rows = bill.environments;
      const scale = Math.max(0, ...rows.flatMap((r) => [r.known_projected || 0, r.budget || 0]));
      const total = bill.total;
      const summary = h('div.headline', null,
        h('div.card.stat', { 'data-stat': 'mtd' }, h('div.label', null, 'To date (' + bill.month + ')'), h('div.value', null, money(total.month_to_date)), h('div.sub', null, total.complete ? 'all lines known' : 'known lines only')),
        h('div.card.stat', { 'data-stat': 'projected' }, h('div.label', null, 'Projected'), h('div.value', null, money(total.projected)), h('div.sub', null, 'to ' + new Date(bill.month_end * 1000).toLocaleDateString())),
        h('div.card.stat', { 'data-stat': 'budget' }, h('div.label', null, 'Budget'), h('div.value', null, total.budget === null ? '—' : money(total.budget)), h('div.sub', null, 'cost.budgets')));
      const cards = rows.length ? h('div.grid-2', null, rows.map((r) => envCard(r, scale)))
        : h('div.card.pad.muted', null, 'No environments: add [environments.<name>] to fastmango.toml.');
      const warn = (bill.warnings || []).map((w) => h('div.card.pad.small', null, FM.withCode(w)));
      top.replaceChildren(summary, cards, ...warn);
      const spec = chartSpec(rows);
      chartCard.hidden = !spec;
      if (spec) {
        if (chart) chart.update(spec);
        else chart = FM.chart(chartBody, spec);
      }
      rest.replaceChildren(...[savingsCard(sav), staleCard(bill)].filter(Boolean));
    }

    async function load() {
      try {
        const [bill, sav] = await Promise.all([FM.api('/api/cost'), FM.api('/api/cost/savings')]);
        if (!alive) return;
        render(bill, sav);
        FM.updated();
      } catch (e) {
        FM.banner('Could not load the cost figures: ' + e.message);
      }
    }
    load();
    timer = setInterval(load, 60000);
    return {
      restyle() { if (chart) chart.redraw(); },
      unmount() { alive = false; clearInterval(timer); if (chart) chart.destroy(); },
    };
  }

  FM.register({
    id: 'cost',
    title: 'Cost',
    order: 70,
    icon: '<svg viewBox="0 0 24 24"><circle cx="12" cy="12" r="8.5"/><path d="M14.8 9.2c-.5-.9-1.6-1.5-2.8-1.5-1.7 0-2.8.9-2.8 2.1 0 2.9 5.8 1.6 5.8 4.5 0 1.2-1.2 2.1-3 2.1-1.3 0-2.5-.6-3-1.6M12 6v1.7M12 16.4V18"/></svg>',
    mount,
  });
})();
