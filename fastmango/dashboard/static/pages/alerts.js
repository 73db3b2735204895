/* Alerts: firing, pending and silenced alerts; rules and their state (no data is shown,
   never hidden); silences with a form to add one; channel health with a test button;
   the history of state changes and deliveries. Reads /api/alerts and /api/alerts/history. */
(function () {
  'use strict';
  const { h } = FM;

  const STATE_PILL = { firing: 'down', pending: 'idle', resolved: 'up' };
  function pill(state, text) {
    return h('span.pill.' + (STATE_PILL[state] || 'idle'), { 'data-state': state }, text || state);
  }
  function labelText(labels) {
    return Object.entries(labels || {}).filter(([k]) => k !== 'alertname' && k !== 'severity')
      .map(([k, v]) => k + '="' + v + '"').join(', ');
  }
  function num(v) {
    if (v === null || v === undefined) return '—';
    return Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? Number(v).toPrecision(3) : String(Math.round(v * 1000) / 1000);
  }
  function stat(label, value, key) {
    return h('div.card.stat', { 'data-stat': key }, h('div.label', null, label), h('div.value', null, String(value)));
  }
  function table(key, title, head, rows, empty) {
    const body = rows.length ? rows : [h('tr', null, h('td.muted', { colspan: String(head.length) }, empty))];
    return h('div.card.table', { 'data-card': key }, h('h3', null, title),
      h('table.list', null, h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))), h('tbody', null, body)));
  }
  function describe(e) {
    const d = e.data || {};
    switch (d.type) {
      case 'state': return (d.alertname || d.rule) + (labelText(d.labels) ? ' {' + labelText(d.labels) + '}' : '') +
        ': ' + d.from + ' → ' + d.to + (d.value !== null && d.value !== undefined ? ' (value ' + num(d.value) + ')' : '');
      case 'notification': return d.channel + ': ' + d.status + ' ' +
        [...new Set((d.alerts || []).map((a) => a.alertname))].join(', ') + ' → ' + d.result +
        (d.error ? ' (' + d.error + ')' : '');
      case 'silence': return 'silence ' + d.silence.id + ' by ' + d.silence.author + ': ' + d.silence.reason;
      case 'unsilence': return 'silence ' + d.id + ' ended by ' + d.by;
      case 'rule': return 'rule ' + d.rule + ': ' + d.state + (d.error ? ' (' + d.error + ')' : '');
      case 'event': return d.title + ': ' + d.text;
      case 'test': return 'test message: ' + Object.entries(d.results || {}).map(([c, ok]) => c + (ok ? ' ok' : ' failed')).join(', ');
      default: return JSON.stringify(d).slice(0, 160);
    }
  }

  function mount(ctx) {
    let alive = true;
    let timer = null;
    let last = 0;
    let data = null;
    const form = {};

    function silenceForm(rules) {
      const rule = h('select', { name: 'rule', 'aria-label': 'Rule' },
        h('option', { value: '' }, '— by labels —'),
        [...new Set(rules.map((r) => r.alertname))].sort().map((n) => h('option', { value: n }, n)));
      const match = h('input', { name: 'match', type: 'text', placeholder: 'label=value, label=value', size: '28' });
      const dur = h('input', { name: 'duration', type: 'text', value: '2h', size: '5', 'aria-label': 'Duration' });
      const reason = h('input', { name: 'reason', type: 'text', placeholder: 'why', size: '28', required: true });
      const msg = h('span.small', { 'data-role': 'silence-result' });
      Object.assign(form, { rule, match, dur, reason, msg });
      const submit = async (ev) => {
        ev.preventDefault();
        const matchers = match.value.split(',').map((s) => s.trim()).filter(Boolean);
        try {
          const s = await FM.post('/api/alerts/silences', {
            rule: rule.value || null, match: matchers, duration: dur.value, reason: reason.value,
          });
          msg.textContent = 'Silence ' + s.id + ' until ' + FM.time(s.ends_at);
          msg.className = 'small';
          reason.value = '';
          load();
        } catch (e) {
          msg.textContent = e.message;
          msg.className = 'small err';
        }
      };
      return h('div.card.pad', { 'data-card': 'silence-form' }, h('h3', null, 'Add a silence'),
        h('form', { onsubmit: submit, style: 'display:flex;gap:8px;flex-wrap:wrap;align-items:center' },
          rule, match, h('label.small', null, 'for'), dur, reason,
          h('button', { type: 'submit' }, 'Silence')), msg);
    }

    function render(d, history) {
      const alerts = d.alerts;
      const firing = alerts.filter((a) => a.state === 'firing' && !a.muted);
      const pending = alerts.filter((a) => a.state === 'pending');
      const muted = alerts.filter((a) => a.muted && a.state === 'firing');
      const nodata = d.rules.filter((r) => r.state === 'nodata' || r.state === 'error');
      const stats = h('div.stats', { style: 'display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:14px;margin-bottom:14px' },
        stat('Firing', firing.length, 'firing'), stat('Pending', pending.length, 'pending'),
        stat('Silenced or inhibited', muted.length, 'muted'), stat('Rules without data', nodata.length, 'nodata'));
      const rows = alerts.map((a) => h('tr', { 'data-alert': a.labels.alertname, 'data-state': a.state },
        h('td', null, pill(a.state)), h('td', null, a.severity || ''),
        h('td', null, h('strong', null, a.labels.alertname), labelText(a.labels) ? h('div.small.mono', null, '{' + labelText(a.labels) + '}') : null,
          a.summary ? h('div.small', null, a.summary) : null),
        h('td.num', null, num(a.value)), h('td.num', null, num(a.threshold)),
        h('td', null, a.state === 'firing' ? FM.ago(a.fired_at) : a.state === 'pending' ? FM.ago(a.active_at) : FM.ago(a.resolved_at)),
        h('td', null, a.muted ? h('span.muted', null, a.muted) : h('button.link', {
          type: 'button', 'data-action': 'silence',
          onclick: () => { form.rule.value = a.labels.alertname; form.reason.focus(); },
        }, 'Silence…'))));
      const alertCard = table('alerts', 'Alerts', ['State', 'Severity', 'Alert', 'Value', 'Threshold', 'Since', ''], rows,
        'Nothing firing or pending.');
      const ruleRows = d.rules.map((r) => h('tr', { 'data-rule': r.name, 'data-rule-state': r.state || 'unknown' },
        h('td', null, h('strong', null, r.name), r.builtin ? h('span.small.muted', null, ' built-in') : null),
        h('td.mono', null, r.expr), h('td.num', null, r.for ? FM.duration(r.for) : '—'), h('td', null, r.severity),
        h('td', null, r.state === 'ok' ? h('span.pill.up', null, 'ok') : r.state === 'nodata'
          ? h('span.pill.idle', { title: 'no series: not OK, not firing' }, 'no data')
          : r.state === 'error' ? h('span.pill.down', { title: r.error || '' }, 'error') : h('span.muted', null, r.state || '—'))));
      const rulesCard = table('rules', 'Rules', ['Rule', 'Expression', 'For', 'Severity', 'State'], ruleRows, 'No rules.');
      const silRows = d.silences.map((s) => h('tr', { 'data-silence': s.id },
        h('td.mono', null, s.id), h('td.mono', null, s.matchers.map((m) => m.label + m.op + '"' + m.value + '"').join(', ')),
        h('td', null, FM.time(s.ends_at)), h('td', null, s.author), h('td', null, s.reason),
        h('td', null, h('button.link', {
          type: 'button', 'data-action': 'unsilence',
          onclick: async () => {
            try { await FM.send('DELETE', '/api/alerts/silences/' + encodeURIComponent(s.id)); load(); } catch (e) { FM.banner(e.message); }
          },
        }, 'End now'))));
      const silCard = table('silences', 'Silences', ['Id', 'Matchers', 'Until', 'By', 'Reason', ''], silRows, 'No active silences.');
      const chRows = d.channels.map((c) => h('tr', { 'data-channel': c.channel, 'data-up': String(c.up) },
        h('td', null, h('strong', null, c.channel)),
        h('td', null, c.up === true ? h('span.pill.up', null, 'up') : c.up === false ? h('span.pill.down', null, 'failing') : h('span.pill.idle', null, 'unused')),
        h('td.num', null, String(c.ok || 0)), h('td.num', null, String(c.failed || 0)),
        h('td', null, c.last_ok_at ? FM.ago(c.last_ok_at) : '—'),
        h('td', null, c.last_error ? h('span.err', null, c.last_error) : h('span.muted', null, '—'))));
      const testBtn = h('button', {
        type: 'button', 'data-action': 'test',
        onclick: async (ev) => {
          ev.target.disabled = true;
          try { await FM.post('/api/alerts/test'); } catch (e) { FM.banner(e.message); }
          ev.target.disabled = false;
          load();
        },
      }, 'Send a test message');
      const chCard = table('channels', 'Channels', ['Channel', 'Health', 'Sent', 'Failed', 'Last success', 'Last error'], chRows,
        'No channel configured: set [alerts.slack], [alerts.discord] or [alerts.email].');
      if (d.channels.length) chCard.append(h('div.pad', { style: 'padding:0 16px 14px' }, testBtn));
      const histRows = history.map((e) => h('tr', { 'data-type': e.data.type }, h('td', null, FM.time(e.ts)),
        h('td', null, h('span.mono', null, e.data.type)), h('td', null, describe(e))));
      const histCard = table('history', 'History', ['When', 'What', ''], histRows, 'No alert history yet.');
      const keep = form.reason && document.activeElement && ctx.el.contains(document.activeElement) ? form : null;
      const formCard = keep ? ctx.el.querySelector('[data-card="silence-form"]') : silenceForm(d.rules);
      ctx.el.replaceChildren(stats, alertCard, h('div.grid-2', null, formCard, chCard), silCard, rulesCard, histCard);
    }

    async function load() {
      try {
        const [d, history] = await Promise.all([FM.api('/api/alerts'), FM.api('/api/alerts/history?limit=30')]);
        if (!alive) return;
        data = d;
        render(d, history);
        last = Date.now();
        FM.updated();
      } catch (e) {
        if (!data) ctx.el.replaceChildren(h('div.card.pad', null, 'Alerts are not available: ' + e.message));
        FM.banner('Could not load alerts: ' + e.message);
      }
    }
    load();
    return {
      tick() {
        if (timer) return;
        timer = setTimeout(() => { timer = null; load(); }, Math.max(500, 3000 - (Date.now() - last)));
      },
      unmount() { alive = false; clearTimeout(timer); },
    };
  }

  FM.register({
    id: 'alerts',
    title: 'Alerts',
    order: 30,
    icon: '<svg viewBox="0 0 24 24"><path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4z"/><path d="M10 20a2 2 0 0 0 4 0"/></svg>',
    mount,
  });
})();
