// The cluster: every GPU as a cell of a heat map, grouped by site, block and GPU type and coloured
// busy, idle, drained, down or unhealthy. Drawn on canvases (one per group), so a 50,000-GPU pool
// costs a few draw calls rather than 50,000 elements.

import {clear, fmtNumber, h, throttled} from '../dom.js';

const kKinds = ['busy', 'idle', 'drained', 'down', 'unhealthy'];
const kCell = 11;
const kGap = 2;
const kTileGap = 6;

function colours() {
  const css = getComputedStyle(document.documentElement);
  return Object.fromEntries(kKinds.map((k) => [k, css.getPropertyValue(`--${k}`).trim()]));
}

// The state of each GPU of node `n`, in index order.
export function gpuKinds(n) {
  const count = n.gpu_count || (n.gpus ? n.gpus.length : 0);
  if (n.state === 'down') return new Array(count).fill('down');
  let busy = Math.max(0, count - (n.free_gpus ?? count));
  const rest = n.state === 'drained' || n.state === 'draining' ? 'drained'
             : n.state === 'unhealthy' ? 'unhealthy' : 'idle';
  const health = new Map((n.gpus || []).map((g) => [g.index, g.health]));
  const out = [];
  for (let i = 0; i < count; i++) {
    const g = n.gpus && n.gpus[i] ? health.get(n.gpus[i].index) : 'healthy';
    if (g === 'unhealthy') out.push('unhealthy');
    else if (busy > 0) {
      out.push('busy');
      busy -= 1;
    } else out.push(rest);
  }
  return out;
}

function groupNodes(nodes) {
  const sites = new Map();
  for (const n of nodes) {
    const site = n.site || 'no site';
    const key = `${n.block || 'no block'}\u0000${n.gpu_type || 'no GPU type'}`;
    if (!sites.has(site)) sites.set(site, new Map());
    const groups = sites.get(site);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(n);
  }
  return [...sites.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([site, groups]) => ({
    site,
    groups: [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([key, list]) => {
      const [block, type] = key.split('\u0000');
      list.sort((a, b) => a.name.localeCompare(b.name, undefined, {numeric: true}));
      return {block, type, nodes: list};
    }),
  }));
}

function tileShape(count) {
  const cols = Math.max(1, Math.min(8, count));
  return {cols, rows: Math.max(1, Math.ceil(count / cols))};
}

function drawGroup(canvas, group, palette) {
  const width = Math.max(120, canvas.parentElement.clientWidth - 2);
  const maxCount = Math.max(1, ...group.nodes.map((n) => n.gpu_count || 0));
  const {cols, rows} = tileShape(maxCount);
  const tileW = cols * (kCell + kGap) - kGap;
  const tileH = rows * (kCell + kGap) - kGap;
  const perRow = Math.max(1, Math.floor((width + kTileGap) / (tileW + kTileGap)));
  const lines = Math.ceil(group.nodes.length / perRow);
  const height = Math.max(tileH, lines * (tileH + kTileGap) - kTileGap);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);
  group.nodes.forEach((n, i) => {
    const x0 = (i % perRow) * (tileW + kTileGap);
    const y0 = Math.floor(i / perRow) * (tileH + kTileGap);
    gpuKinds(n).forEach((kind, g) => {
      ctx.fillStyle = palette[kind];
      ctx.fillRect(x0 + (g % cols) * (kCell + kGap), y0 + Math.floor(g / cols) * (kCell + kGap), kCell, kCell);
    });
  });
  // Where each node is, for the tooltip.
  canvas.hit = (x, y) => {
    const col = Math.floor(x / (tileW + kTileGap));
    const line = Math.floor(y / (tileH + kTileGap));
    if (col >= perRow || x - col * (tileW + kTileGap) > tileW || y - line * (tileH + kTileGap) > tileH) return null;
    return group.nodes[line * perRow + col] || null;
  };
}

function tally(nodes) {
  const t = Object.fromEntries(kKinds.map((k) => [k, 0]));
  for (const n of nodes) for (const k of gpuKinds(n)) t[k] += 1;
  return t;
}

function legend(t, testid) {
  return h('div', {class: 'legend', 'data-testid': testid},
           kKinds.map((k) => h('span', {style: {'--c': `var(--${k})`}, 'data-kind': k, 'data-count': t[k]},
                               h('b', null, fmtNumber(t[k])), ` ${k}`)));
}

export function mount(root, {store}) {
  store.nodesWanted += 1;
  store.loadNodes().catch(() => {});
  const cards = h('div', {class: 'cards', 'data-testid': 'cluster-cards'});
  const map = h('div', {class: 'panel', 'data-testid': 'heatmap'});
  const tip = h('div', {class: 'tooltip', hidden: true});
  root.append(
    h('div', {class: 'view-head'}, h('h2', null, 'Cluster'),
      h('span', {class: 'sub'}, 'Every GPU by site, block and type. Hover a node for details.')),
    cards, map, tip);

  function card(label, value, testid) {
    return h('div', {class: 'card-stat', 'data-testid': testid}, h('div', {class: 'n'}, fmtNumber(value)),
             h('div', {class: 'l'}, label));
  }

  const render = () => {
    const nodes = [...store.nodes.values()];
    const t = tally(nodes);
    const c = store.cluster || {};
    const total = kKinds.reduce((s, k) => s + t[k], 0);
    cards.replaceChildren(
      card('GPUs', total, 'card-gpus'), card('busy', t.busy, 'card-busy'), card('idle', t.idle, 'card-idle'),
      card('down', t.down, 'card-down'), card('unhealthy', t.unhealthy, 'card-unhealthy'),
      card('nodes', nodes.length, 'card-nodes'), card('jobs pending', c.pending, 'card-pending'),
      card('jobs running', c.running, 'card-running'));
    clear(map);
    if (!nodes.length) {
      map.append(h('div', {class: 'empty'}, 'No nodes have joined yet.'));
      return;
    }
    map.append(legend(t, 'legend'));
    const palette = colours();
    const draws = [];
    for (const site of groupNodes(nodes)) {
      const groups = h('div', {class: 'heat-groups'});
      map.append(h('section', {class: 'heat-site', 'data-site': site.site},
                   h('h3', {style: {marginTop: '14px'}}, site.site), groups));
      for (const g of site.groups) {
        const canvas = h('canvas', {role: 'img', 'aria-label': `${site.site} ${g.block} ${g.type}`});
        const gt = tally(g.nodes);
        groups.append(h('div', {class: 'heat-group', 'data-testid': 'heat-group', 'data-site': site.site,
                                'data-block': g.block, 'data-type': g.type,
                                ...Object.fromEntries(kKinds.map((k) => [`data-${k}`, gt[k]]))},
          h('header', null, h('span', null, h('b', null, g.block), ` · ${g.type}`),
            h('span', {class: 'numbers'}, `${g.nodes.length} nodes · ${gt.busy}/${g.nodes.reduce((s, n) => s + (n.gpu_count || 0), 0)} busy`)),
          canvas));
        draws.push(() => drawGroup(canvas, g, palette));
      }
    }
    for (const d of draws) d();
  };

  const onMove = (ev) => {
    const canvas = ev.target;
    if (!(canvas instanceof HTMLCanvasElement) || !canvas.hit) {
      tip.hidden = true;
      return;
    }
    const r = canvas.getBoundingClientRect();
    const n = canvas.hit(ev.clientX - r.left, ev.clientY - r.top);
    if (!n) {
      tip.hidden = true;
      return;
    }
    const kinds = tally([n]);
    tip.textContent = `${n.name} · ${n.state}${n.state_reason ? ` (${n.state_reason})` : ''} · ` +
                      `${kinds.busy}/${n.gpu_count} busy${kinds.unhealthy ? ` · ${kinds.unhealthy} unhealthy` : ''}`;
    tip.style.left = `${ev.clientX + 14}px`;
    tip.style.top = `${ev.clientY + 12}px`;
    tip.hidden = false;
  };
  map.addEventListener('mousemove', onMove);
  map.addEventListener('mouseleave', () => { tip.hidden = true; });
  map.addEventListener('click', (ev) => {
    const canvas = ev.target;
    if (!(canvas instanceof HTMLCanvasElement) || !canvas.hit) return;
    const r = canvas.getBoundingClientRect();
    const n = canvas.hit(ev.clientX - r.left, ev.clientY - r.top);
    if (n) location.hash = `#/nodes?q=${encodeURIComponent(n.name)}`;
  });

  const renderSoon = throttled(render, 300);
  const onResize = throttled(render, 200);
  window.addEventListener('resize', onResize);
  render();
  const off = store.subscribe((c) => {
    if (c.nodes || c.cluster) renderSoon();
  });
  return () => {
    off();
    store.nodesWanted -= 1;
    window.removeEventListener('resize', onResize);
  };
}
