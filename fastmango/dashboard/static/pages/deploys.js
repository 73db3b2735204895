/* Deploys: each environment with its lock and releases, the health gate's verdicts with
   their charts (error ratio and p95 before and after the rollout), and a rollback button
   that asks for confirmation before it POSTs /api/deploys/<env>/rollback. */
(function () {
  'use strict';
  const { h } = FM;

  const VERDICT = {
    running: 'idle', pass: 'up', fail: 'down', rolled_back: 'down', rollback_failed: 'down',
    inconclusive: 'idle', cancelled: 'idle', error: 'down',
  };
  function pill(text, kind) { return h('span.pill.' + (kind || 'idle'), null, text); }
  function stateKind(s) {
    return s === 'live' ? 'up' : (s === 'failed' || s === 'rolled_back') ? 'down' : 'idle';
  }

  function releaseRows(env, rows, onRollback) {
    if (!rows.length) return [h('tr', null, h('td', { colspan: '6', class: 'muted' }, 'No releases recorded yet.'))];
    return rows.map((r) => {
      const canTarget = r.state === 'superseded' && r.recorded !== 'rolled_back' && r.recorded !== 'failed';
      return h('tr', { 'data-release': r.version, 'data-state': r.state },
        h('td', null, h('strong', null, r.version || '—')),
        h('td', null, pill(r.recorded === 'rolled_back' ? 'rolled back' : r.state, stateKind(r.recorded === 'rolled_back' ? 'rolled_back' : r.state))),
        h('td.mono', null, r.image || '—'),
        h('td', null, r.created_at ? FM.ago(r.created_at) : '—'),
        h('td', null, r.who || h('span.muted', null, '—')),
        h('td', null, canTarget ? h('button.small', {
          type: 'button', 'data-action': 'rollback-to', onclick: () => onRollback(env, r.version),
        }, 'Roll back to ' + r.version) : ''));
    });
  }

  function gateCard(g, settings) {
    const kind = VERDICT[g.verdict] || 'idle';
    const reasons = (g.reasons || []).join('; ');
    const card = h('div.card.pad', { 'data-gate': g.version || '', 'data-verdict': g.verdict },
      h('h3', null, 'Health gate · ' + (g.version || '?') + ' ', pill(g.verdict.replace('_', ' '), kind)),
      h('div.small', null, (g.previous ? 'against ' + g.previous + ' · ' : '') +
        (g.live_at ? 'live ' + FM.ago(g.live_at) : '') + (g.checks ? ' · ' + g.checks + ' checks, ' + (g.failed || 0) + ' failed' : '')),
      reasons ? h('p.small', { 'data-reasons': '' }, reasons) : '',
      g.rollback ? h('p.small', null, 'Rollback: ' + g.rollback) : '');
    const series = g.series || {};
    const charts = h('div.grid-2');
    const specs = [
      ['http_error_ratio', 'Error ratio', 'ratio', settings && settings.max_error_ratio],
      ['http_request_duration_p95_seconds', 'p95 latency', 'seconds', null],
    ];
    card.appendChild(charts);
    const made = [];
    for (const [name, title, unit, limit] of specs) {
      const pts = series[name] || [];
      const box = h('div', { 'data-chart': name });
      charts.appendChild(h('div', null, h('div.small', null, title + ' before / after the rollout'), box));
      if (!pts.length) { box.appendChild(h('div.muted.small', null, 'No data in the window yet.')); continue; }
      const x = pts.map((p) => p[0]);
      const cut = g.started || g.live_at || 0;
      const before = pts.map((p) => (p[0] < cut ? p[1] : null));
      const after = pts.map((p) => (p[0] >= (g.live_at || cut) ? p[1] : null));
      made.push([box, {
        x, unit, height: 160,
        lines: [{ label: 'before (' + (g.previous || 'previous') + ')', values: before },
          { label: 'after (' + (g.version || 'new') + ')', values: after }],
        thresholds: limit ? [{ label: 'max', value: limit }] : [],
      }]);
    }
    return [card, made];
  }

  function mount(ctx) {
    let alive = true;
    let timer = null;
    let charts = [];
    let busy = false;
    const notices = {}; // env → the last rollback's outcome, kept across re-renders

    function notice(env) {
      const n = notices[env];
      if (!n) return [];
      return [h('div.card.pad', { 'data-rollback': n.kind }, n.kind === 'failed' ? h('span.err', null, n.text) : n.text)];
    }

    function confirmBox(env, version) {
      const box = ctx.el.querySelector('[data-confirm="' + env + '"]');
      if (!box) return;
      const what = version ? 'to ' + version : 'to the previous healthy release';
      box.replaceChildren(h('div.card.pad.confirm', { role: 'alertdialog', 'aria-label': 'Confirm rollback' },
        h('p', null, h('strong', null, 'Roll back ' + env + ' ' + what + '?'),
          ' The platform switches back to an already-built release; nothing is rebuilt.'),
        h('button', { type: 'button', 'data-action': 'confirm', onclick: () => doRollback(env, version, box) }, 'Roll back'),
        ' ',
        h('button', { type: 'button', 'data-action': 'cancel', onclick: () => box.replaceChildren() }, 'Cancel')));
    }

    async function doRollback(env, version, box) {
      busy = true;
      box.replaceChildren(h('div.card.pad', { 'data-rollback': 'running' }, 'Rolling back ' + env + '…'));
      try {
        const out = await FM.post('/api/deploys/' + encodeURIComponent(env) + '/rollback',
          version ? { version, reason: 'dashboard' } : { reason: 'dashboard' });
        notices[env] = { kind: 'ok', text: 'Rolled back ' + env + ': ' + (out.from_version || '—') + ' → ' +
          out.to_version + ' (' + (out.image || '') + ') in ' + out.duration.toFixed(1) + ' s.' };
      } catch (e) {
        notices[env] = { kind: 'failed', text: 'Rollback failed: ' + e.message };
      } finally {
        box.replaceChildren(...notice(env));
        busy = false;
        load(false);
      }
    }

    async function render(data) {
      charts.forEach((c) => c.destroy());
      charts = [];
      const parts = [];
      const pending = [];
      if (!data.environments.length) {
        parts.push(h('div.card.pad', null, h('h3', null, 'No environments'),
          h('p', null, 'Name where the app runs in the settings ([environments.production] with platform and app), then deploy with ',
            h('code', null, 'fastmango deploy <platform> --env=production'), '.')));
      }
      for (const env of data.environments) {
        let rows = [];
        let note = '';
        try {
          rows = await FM.api('/api/deploys/' + encodeURIComponent(env.name) + '/releases?limit=15');
        } catch (e) {
          note = 'Platform unreachable (' + e.message + '); showing what was recorded here.';
          rows = env.releases.map((r) => ({ version: r.version, state: r.state, image: r.image, created_at: r.ts, who: r.who, recorded: r.state }));
        }
        const gates = await FM.api('/api/deploys/' + encodeURIComponent(env.name) + '/gates?limit=3');
        if (!alive) return;
        const lock = env.lock ? h('div.small', { 'data-lock': '' }, pill('locked', 'idle'), ' ' + env.lock.action + ' by ' + env.lock.who + ' since ' + FM.ago(env.lock.since)) : '';
        const head = h('div.card.pad', { 'data-env': env.name },
          h('h3', null, env.name + ' ', pill(env.platform, 'idle'), env.production ? ' ' : '', env.production ? pill('production', 'down') : ''),
          h('div.small', null, 'App ' + env.app + (env.regions.length ? ' · regions ' + env.regions.join(', ') : '') + (env.size ? ' · ' + env.size : '')),
          lock,
          h('p', null, h('button', { type: 'button', 'data-action': 'rollback', onclick: () => confirmBox(env.name, null) }, 'Roll back ' + env.name)),
          h('div', { 'data-confirm': env.name }, ...notice(env.name)),
          note ? h('p.small.muted', null, note) : '');
        const table = h('div.card.table', { 'data-releases': env.name }, h('h3', null, 'Releases · ' + env.name),
          h('table.list', null, h('thead', null, h('tr', null, h('th', null, 'Version'), h('th', null, 'State'),
            h('th', null, 'Image'), h('th', null, 'When'), h('th', null, 'Who'), h('th', null, ''))),
          h('tbody', null, releaseRows(env.name, rows, confirmBox))));
        parts.push(head, table);
        for (const g of gates) {
          const [card, made] = gateCard(g, data.gate_settings);
          parts.push(card);
          pending.push(...made);
        }
      }
      ctx.el.replaceChildren(...parts);
      for (const [box, spec] of pending) charts.push(FM.chart(box, spec));
    }

    async function load() {
      if (busy) return;
      try {
        const data = await FM.api('/api/deploys');
        if (!alive) return;
        await render(data);
        FM.updated();
      } catch (e) {
        FM.banner('Could not load deploys: ' + e.message);
      }
    }
    load();
    return {
      tick() {
        if (timer || busy) return;
        timer = setTimeout(() => { timer = null; load(); }, 10000);
      },
      unmount() { alive = false; clearTimeout(timer); charts.forEach((c) => c.destroy()); },
    };
  }

  FM.register({
    id: 'deploys',
    title: 'Deploys',
    order: 50,
    icon: '<svg viewBox="0 0 24 24"><path d="M12 3v12M7 10l5 5 5-5"/><path d="M4 19h16"/></svg>',
    mount,
  });
})();
