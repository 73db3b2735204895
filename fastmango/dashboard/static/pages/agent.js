/* Agent: the agent itself, its store, its collectors (up/down, last error) and recent
   events. Also the smallest example of a page: register an id, a title and mount(). */
(function () {
  'use strict';
  const { h } = FM;

  function kv(pairs) {
    return h('dl.kv', null, pairs.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }
  function status(c) {
    if (c.up) return h('span.pill.up', null, 'up');
    if (!c.runs_total) return h('span.pill.idle', null, 'starting');
    return h('span.pill.down', null, 'down');
  }
  function summary(e) {
    const d = e.data || {};
    if (e.kind === 'audit') {
      return [d.who, d.action, d.target].filter(Boolean).join(' · ') + (d.result ? ': ' + d.result : '') +
        (d.reason ? ' (' + d.reason + ')' : '');
    }
    const text = d.message || d.summary || JSON.stringify(d);
    return text.length > 160 ? text.slice(0, 157) + '…' : text;
  }

  function mount(ctx) {
    let alive = true;
    let timer = null;
    let last = 0;

    function render(st, events) {
      const store = st.store;
      const used = store.max_bytes ? Math.min(100, (100 * store.size_bytes) / store.max_bytes) : 0;
      const agentCard = h('div.card.pad', { 'data-card': 'agent' }, h('h3', null, 'Agent'), kv([
        ['Version', st.version], ['URL', st.url], ['PID', String(st.pid)],
        ['Up for', FM.duration(st.uptime_seconds)], ['Started', FM.time(st.started_at)],
        ['State folder', st.state_dir],
      ]));
      const storeCard = h('div.card.pad', { 'data-card': 'store' }, h('h3', null, 'State store'),
        h('div.small', null, FM.fmt(store.size_bytes, 'bytes') + ' of ' + FM.fmt(store.max_bytes, 'bytes') +
          ' (' + used.toFixed(used < 10 ? 1 : 0) + ' %)'),
        h('div.meter', { role: 'meter', 'aria-valuenow': used.toFixed(1), 'aria-valuemin': '0', 'aria-valuemax': '100' },
          h('i', { style: 'width:' + used.toFixed(2) + '%' })),
        kv([
          ['File', store.path], ['Samples written', store.written_samples.toLocaleString('en')],
          ['Samples dropped', store.dropped_samples.toLocaleString('en')],
          ['Last error', store.last_error || 'none'],
        ]));
      const rows = st.collectors.map((c) => h('tr', { 'data-collector': c.name, 'data-up': String(c.up) },
        h('td', null, h('strong', null, c.name)), h('td', null, status(c)),
        h('td.num', null, c.interval + ' s'), h('td.num', null, (c.last_duration * 1000).toFixed(1) + ' ms'),
        h('td.num', null, String(c.series)), h('td.num', null, String(c.runs_total)),
        h('td.num', null, String(c.errors_total)), h('td', null, FM.ago(c.last_success)),
        h('td', null, c.last_error ? h('span.err', null, c.last_error) : h('span.muted', null, '—'))));
      const collectors = h('div.card.table', { 'data-card': 'collectors' }, h('h3', null, 'Collectors'),
        h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'Collector'), h('th', null, 'Status'),
          h('th.num', null, 'Every'), h('th.num', null, 'Last run'), h('th.num', null, 'Series'),
          h('th.num', null, 'Runs'), h('th.num', null, 'Errors'), h('th', null, 'Last success'),
          h('th', null, 'Last error'))), h('tbody', null, rows)));
      const evRows = events.length ? events.map((e) => h('tr', null, h('td', null, FM.time(e.ts)),
        h('td', null, h('span.mono', null, e.kind)), h('td', null, summary(e))))
        : [h('tr', null, h('td', { colspan: '3', class: 'muted' }, 'No events yet.'))];
      const evCard = h('div.card.table', { 'data-card': 'events' }, h('h3', null, 'Recent events'),
        h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Kind'),
          h('th', null, 'What'))), h('tbody', null, evRows)));
      ctx.el.replaceChildren(h('div.grid-2', null, agentCard, storeCard), collectors, evCard);
    }

    async function load() {
      try {
        const [st, events] = await Promise.all([FM.api('/api/status'), FM.api('/api/events?limit=20')]);
        if (!alive) return;
        render(st, events);
        last = Date.now();
        FM.updated();
      } catch (e) {
        FM.banner('Could not load the agent status: ' + e.message);
      }
    }
    load();
    return {
      tick() {
        if (timer) return;
        timer = setTimeout(() => { timer = null; load(); }, Math.max(250, 2000 - (Date.now() - last)));
      },
      unmount() { alive = false; clearTimeout(timer); },
    };
  }

  FM.register({
    id: 'agent',
    title: 'Agent',
    order: 90,
    icon: '<svg viewBox="0 0 24 24"><rect x="4" y="4" width="16" height="6" rx="1.5"/><rect x="4" y="14" width="16" height="6" rx="1.5"/><path d="M8 7h.01M8 17h.01"/></svg>',
    mount,
  });
})();
