// Nodes: state, health and load of each node; admins drain and resume them here.

import {badge, confirmDialog, fmtRelative, h, throttled, toast} from '../dom.js';
import {VirtualList} from '../vlist.js';

function gpuBar(n) {
  const total = n.gpu_count || 0;
  const busy = Math.max(0, total - (n.free_gpus ?? total));
  const pct = total ? (100 * busy) / total : 0;
  return h('span', {class: 'gpu-bar'}, h('span', {class: 'bar'}, h('i', {style: {width: `${pct}%`}})),
           h('span', {class: 'numbers', 'data-testid': 'busy'}, `${busy}/${total}`));
}

export function mount(root, {store, api, who}) {
  store.nodesWanted += 1;
  store.loadNodes().catch(() => {});
  const admin = who.role === 'admin';
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const search = h('input', {type: 'search', placeholder: 'Filter by name, site, block, type, state',
                             'data-testid': 'nodes-search', value: params.get('q') || ''});
  const count = h('span', {class: 'count', 'data-testid': 'nodes-count'});

  async function act(n, action) {
    let body;
    if (action === 'drain') {
      const reason = await confirmDialog({
        title: `Drain ${n.name}?`, withReason: true, ok: 'Drain', danger: true,
        text: 'Running jobs finish; nothing new starts on it until it is resumed.'});
      if (reason === null) return;
      body = reason ? {reason} : {};
    }
    try {
      const updated = await api.post(`/v1/nodes/${encodeURIComponent(n.name)}/${action}`, body);
      if (updated && updated.name) store.nodes.set(updated.name, {...n, ...updated});
      store.emit({nodes: true});
      toast(`${n.name}: ${action === 'drain' ? 'draining' : 'resumed'}`);
    } catch (e) {
      toast(`${action} ${n.name}: ${e.message}`, 'error');
    }
  }

  const list = new VirtualList({
    columns: 'node-cols',
    testid: 'nodes-list',
    header: ['Node', 'Site', 'Block', 'Type', 'State', 'GPUs busy', 'Health', 'Reason', admin ? 'Actions' : 'Heartbeat'],
    key: (n) => n.name,
    cells: (n) => {
      const sick = (n.gpus || []).filter((g) => g.health !== 'healthy').length;
      let last;
      if (admin) {
        const drainable = n.state === 'up' || n.state === 'unhealthy' || n.state === 'down';
        last = h('span', null, drainable
          ? h('button', {class: 'small ghost', 'data-testid': 'drain', onclick: () => act(n, 'drain')}, 'Drain')
          : h('button', {class: 'small', 'data-testid': 'resume', onclick: () => act(n, 'resume')}, 'Resume'));
      } else {
        last = h('span', {class: 'numbers'}, n.last_heartbeat ? fmtRelative(n.last_heartbeat) : '—');
      }
      return [
        h('span', {class: 'mono', title: n.name}, n.name),
        h('span', null, n.site || '—'),
        h('span', null, n.block || '—'),
        h('span', null, n.gpu_type || '—'),
        h('span', {'data-testid': 'node-state'}, badge(n.state)),
        gpuBar(n),
        h('span', {class: sick ? 'error' : 'numbers'}, sick ? `${sick} unhealthy` : 'healthy'),
        h('span', {class: 'reason', title: n.state_reason || ''}, n.state_reason || ''),
        last,
      ];
    },
  });

  const recompute = () => {
    const q = search.value.trim().toLowerCase();
    const out = [...store.nodes.values()].filter((n) =>
      !q || `${n.name} ${n.site} ${n.block} ${n.gpu_type} ${n.state}`.toLowerCase().includes(q));
    out.sort((a, b) => a.name.localeCompare(b.name, undefined, {numeric: true}));
    list.setItems(out);
    count.textContent = `${out.length.toLocaleString()} of ${store.nodes.size.toLocaleString()} nodes`;
  };
  const recomputeSoon = throttled(recompute, 250);
  search.addEventListener('input', recomputeSoon);
  root.append(
    h('div', {class: 'view-head'}, h('h2', null, 'Nodes'),
      h('span', {class: 'sub'}, admin ? 'Drain a node to stop new work on it; resume to take it back.'
                                      : 'State and health of every node.')),
    h('div', {class: 'filters'}, search, count), list.el);
  recompute();
  const off = store.subscribe((c) => {
    if (c.nodes) recomputeSoon();
  });
  return () => {
    off();
    store.nodesWanted -= 1;
  };
}
