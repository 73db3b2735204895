/* Fleet: every agent of the app sharing its PostgreSQL — who leads, each one's heartbeat
   age and health — from /api/fleet, refreshed every few seconds. */
(function () {
  'use strict';
  const { h } = FM;

  function kv(pairs) {
    return h('dl.kv', null, pairs.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
  }
  function age(s) {
    if (s === null || s === undefined) return '—';
    return s < 10 ? s.toFixed(1) + ' s' : FM.duration(s);
  }
  function modeText(f) {
    if (f.mode === 'postgres') return 'Shared PostgreSQL (schema ' + f.schema + ', version ' + (f.schema_version ?? '—') + ')';
    if (f.mode === 'single') return 'A fleet of one (no database_url)';
    return 'Off (fleet.enabled = false)';
  }

  function mount(ctx) {
    let alive = true;
    let timer = null;

    function render(f) {
      const rows = (f.instances || []).map((r) => h('tr', {
        'data-instance': r.id, 'data-state': r.state, 'data-leader': String(r.leader), 'data-self': String(r.self),
      },
      h('td', null, h('strong', null, r.id), r.self ? h('span.muted', null, ' (this agent)') : ''),
      h('td', null, r.leader ? h('span.pill.up', { 'data-testid': 'leader-mark', title: 'holds the leader lock' }, 'leader')
        : h('span.muted', null, 'follower')),
      h('td', null, h('span.pill.' + (r.state === 'up' ? 'up' : 'down'), null, r.state)),
      h('td.num', { 'data-age': String(r.heartbeat_age_seconds) }, age(r.heartbeat_age_seconds)),
      h('td', null, h('span.mono', null, r.address)),
      h('td', null, r.version), h('td', null, r.hostname + ' · pid ' + r.pid),
      h('td', null, FM.ago(r.started_at))));
      const table = h('div.card.table', { 'data-card': 'instances' }, h('h3', null, 'Instances'),
        h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'Instance'), h('th', null, 'Role'),
          h('th', null, 'Health'), h('th.num', null, 'Heartbeat age'), h('th', null, 'Address'),
          h('th', null, 'Version'), h('th', null, 'Host'), h('th', null, 'Started'))),
        h('tbody', null, rows.length ? rows
          : [h('tr', null, h('td', { colspan: '8', class: 'muted' }, 'No instances registered yet.'))])));
      const summary = h('div.card.pad', { 'data-card': 'fleet', style: 'margin-bottom:14px' }, h('h3', null, 'Fleet'), kv([
        ['Coordination', modeText(f)],
        ['Leader', f.leader ? h('strong', { 'data-testid': 'leader' }, f.leader) : h('span.err', null, 'none right now')],
        ['This agent', (f.instance || '—') + (f.is_leader ? ' · leads' : ' · follows')],
        ['Instances up', String(f.instances_up ?? (f.instances || []).length)],
        ['Database', f.connected ? h('span.pill.up', null, 'connected') : h('span.pill.down', null, 'unreachable')],
        ['Last error', f.last_error ? h('span.err', null, f.last_error) : h('span.muted', null, 'none')],
        ['Timing', 'heartbeat every ' + f.heartbeat_interval + ' s · leader check every ' + f.check_interval +
          ' s · down after ' + f.stale_after + ' s'],
      ]));
      ctx.el.replaceChildren(summary, table);
    }

    async function load() {
      try {
        const f = await FM.api('/api/fleet');
        if (!alive) return;
        render(f);
        FM.updated();
      } catch (e) {
        FM.banner('Could not load the fleet: ' + e.message);
      }
      if (alive) timer = setTimeout(load, 2000);
    }
    load();
    return {
      tick() {},
      unmount() { alive = false; clearTimeout(timer); },
    };
  }

  FM.register({
    id: 'fleet',
    title: 'Fleet',
    order: 80,
    icon: '<svg viewBox="0 0 24 24"><circle cx="6" cy="7" r="2.5"/><circle cx="18" cy="7" r="2.5"/><circle cx="12" cy="17" r="2.5"/><path d="M8 8.5l3 6M16 8.5l-3 6M8.5 7h7"/></svg>',
    mount,
  });
})();
