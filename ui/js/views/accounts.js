// Accounts: the tree, each account's quota per GPU type (GPUs in use against the guarantee and
// the limit) and its fair-share standing (its part of its siblings' usage against its part of
// their shares).

import {clear, fmtNumber, h, throttled} from '../dom.js';

function pct(x) {
  return `${Math.round(x * 100)}%`;
}

function quotaLine(type, quota, used) {
  const scale = Math.max(quota.limit || 0, quota.guaranteed || 0, used, 1);
  const at = (v) => `${Math.min(100, (100 * v) / scale)}%`;
  return h('div', {class: 'quota-line', 'data-testid': `quota-${type}`},
    h('span', {class: 'mono'}, type),
    h('span', {class: 'bar', title: `${used} in use, ${quota.guaranteed} guaranteed, ${quota.limit} limit`},
      h('i', {class: used > (quota.limit || Infinity) ? 'over' : '', style: {width: at(used)}}),
      h('span', {class: 'mark', style: {left: at(quota.guaranteed || 0)}, title: 'guaranteed'}),
      quota.limit ? h('span', {class: 'mark limit', style: {left: `calc(${at(quota.limit)} - 2px)`}, title: 'limit'}) : null),
    h('span', {class: 'numbers'}, `${used} / ${quota.guaranteed} / ${quota.limit}`));
}

export function mount(root, {store, who}) {
  const body = h('tbody');
  const note = who.role === 'admin' ? 'GPUs in use count every running job.'
             : 'GPUs in use count the running jobs your token can see.';
  root.append(
    h('div', {class: 'view-head'}, h('h2', null, 'Accounts'),
      h('span', {class: 'sub'}, `Quotas: in use / guaranteed / limit. Fair share: usage against target. ${note}`)),
    h('div', {class: 'panel'},
      h('table', {class: 'acct-table', 'data-testid': 'accounts'},
        h('thead', null, h('tr', null, ['Account', 'Shares', 'Fair share (usage vs target)', 'GPUs by type', 'GPU-hours']
          .map((t) => h('th', null, t)))),
        body)));

  const render = () => {
    const accounts = store.accounts;
    const byName = new Map(accounts.map((a) => [a.name, a]));
    const children = new Map();
    for (const a of accounts) {
      const p = a.parent && byName.has(a.parent) ? a.parent : '';
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(a);
    }
    // GPUs in use by account and type, then summed up the tree.
    const used = new Map();
    for (const j of store.jobs.values()) {
      if (j.state !== 'running' && j.state !== 'starting') continue;
      const node = store.nodes.get(j.node);
      const type = (node && node.gpu_type) || j.gpuType.split(' | ')[0] || '?';
      let a = j.account;
      const seen = new Set();
      while (a && !seen.has(a)) {
        seen.add(a);
        const m = used.get(a) || {};
        m[type] = (m[type] || 0) + j.gpus;
        used.set(a, m);
        a = byName.get(a) ? byName.get(a).parent : '';
      }
    }
    clear(body);
    const walk = (parent, depth) => {
      const kids = (children.get(parent) || []).sort((a, b) => a.name.localeCompare(b.name));
      const shareSum = kids.reduce((s, a) => s + (a.shares || 0), 0) || 1;
      const usageSum = kids.reduce((s, a) => s + (a.usage_gpu_hours || 0), 0);
      for (const a of kids) {
        const target = (a.shares || 0) / shareSum;
        const actual = usageSum > 0 ? (a.usage_gpu_hours || 0) / usageSum : 0;
        const u = used.get(a.name) || {};
        const types = [...new Set([...Object.keys(a.quotas || {}), ...Object.keys(u)])].sort();
        body.append(h('tr', {'data-testid': 'account-row', 'data-account': a.name},
          h('td', null, h('span', {class: 'acct-name', style: {paddingLeft: `${depth * 18}px`}},
            depth ? h('span', {class: 'twig'}, '└') : null, a.name)),
          h('td', null, fmtNumber(a.shares)),
          h('td', null,
            h('div', {class: 'bar share', title: `usage ${pct(actual)} of siblings, target ${pct(target)}`},
              h('i', {class: actual > target ? 'over' : '', style: {width: pct(Math.min(1, actual))}}),
              h('span', {class: 'mark', style: {left: pct(Math.min(1, target))}})),
            h('div', {class: 'numbers', style: {marginTop: '4px'}}, `${pct(actual)} used · target ${pct(target)}`)),
          h('td', null, types.length
            ? types.map((t) => quotaLine(t, (a.quotas || {})[t] || {guaranteed: 0, limit: 0}, u[t] || 0))
            : h('span', {class: 'numbers'}, 'no quota')),
          h('td', {class: 'numbers'}, fmtNumber(a.usage_gpu_hours, 1),
            a.budget ? h('div', null, `budget ${fmtNumber(a.budget.gpu_hours)}`) : null)));
        walk(a.name, depth + 1);
      }
    };
    walk('', 0);
    if (!body.firstChild) body.append(h('tr', null, h('td', {colspan: 5, class: 'empty'}, 'No accounts.')));
  };
  const renderSoon = throttled(render, 500);
  render();
  const off = store.subscribe((c) => {
    if (c.accounts || c.nodes || c.jobs === true || (c.jobs && c.jobs.size)) renderSoon();
  });
  return off;
}
