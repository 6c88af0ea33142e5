// The queue: pending and running jobs (and the ones that finished while the page was open),
// filterable, with pending reasons and estimated starts. A virtualised list; the filter runs at
// most every 250 ms however fast events come in.

import {badge, fmtRelative, h, isTerminal, throttled} from '../dom.js';
import {VirtualList} from '../vlist.js';

const kStateFilters = {
  active: (s) => s === 'pending' || s === 'starting' || s === 'running',
  pending: (s) => s === 'pending',
  running: (s) => s === 'starting' || s === 'running',
  finished: (s) => isTerminal(s),
  all: () => true,
};
const kGroup = {running: 0, starting: 0, pending: 1};
const kSorts = {
  queue: (a, b) => (kGroup[a.state] ?? 2) - (kGroup[b.state] ?? 2) ||
                   (b.priority || 0) - (a.priority || 0) || a.id - b.id,
  oldest: (a, b) => a.id - b.id,
  newest: (a, b) => b.id - a.id,
};

function reasonCell(j) {
  if (j.state === 'pending') {
    if (j.held) return h('span', {class: 'reason'}, h('b', null, 'held'), ' until released');
    if (!j.reason) return h('span', {class: 'reason'}, j.fetched ? 'waiting for the next pass' : '…');
    return h('span', {class: 'reason', title: j.reason.message, 'data-testid': 'reason'},
             h('b', null, j.reason.code), ' ', j.reason.message);
  }
  if (j.state === 'starting' || j.state === 'running') {
    const more = j.nodes > 1 ? ` +${j.nodes - 1}` : '';
    return h('span', null, j.node ? `on ${j.node}${more}` : '');
  }
  return h('span', {class: 'reason'}, j.exit !== undefined && j.exit !== null ? `exit ${j.exit}` : '');
}

function whenCell(j) {
  if (j.state === 'pending') {
    const est = j.reason && j.reason.est;
    return h('span', {title: est || '', 'data-testid': 'estimate'}, est ? `starts ${fmtRelative(est)}` : '—');
  }
  if (j.state === 'starting' || j.state === 'running') return h('span', null, j.start ? `started ${fmtRelative(j.start)}` : '');
  return h('span', null, j.end ? `ended ${fmtRelative(j.end)}` : '');
}

export function mount(root, {store}) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const search = h('input', {type: 'search', placeholder: 'Filter by id, name, user, account, node, reason',
                             'data-testid': 'queue-search', value: params.get('q') || ''});
  const stateSel = h('select', {'data-testid': 'queue-state'},
                     Object.keys(kStateFilters).map((k) => h('option', {value: k}, k)));
  stateSel.value = params.get('state') || 'active';
  const accountSel = h('select', {'data-testid': 'queue-account'}, h('option', {value: ''}, 'all accounts'));
  const sortSel = h('select', {'data-testid': 'queue-sort'},
                    h('option', {value: 'queue'}, 'queue order'), h('option', {value: 'oldest'}, 'oldest first'),
                    h('option', {value: 'newest'}, 'newest first'));
  const count = h('span', {class: 'count', 'data-testid': 'queue-count'});
  const list = new VirtualList({
    columns: 'queue-cols',
    testid: 'queue-list',
    header: ['Job', 'Name', 'User', 'Account', 'State', 'GPUs', 'Reason / placement', 'When'],
    key: (j) => j.id,
    onOpen: (j) => { location.hash = `#/jobs/${j.id}`; },
    cells: (j) => [
      h('a', {href: `#/jobs/${j.id}`, class: 'mono'}, `#${j.id}`),
      h('span', {title: j.name}, j.name || '—'),
      h('span', null, j.user || ''),
      h('span', null, j.account || ''),
      h('span', {'data-testid': 'state'}, badge(j.state), j.held ? [' ', badge('held')] : null),
      h('span', null, j.gpus ? `${j.gpus}${j.gpuType ? ` × ${j.gpuType}` : ' GPU'}` : ''),
      reasonCell(j),
      whenCell(j),
    ],
  });

  function fillAccounts() {
    const current = accountSel.value;
    const names = store.accounts.map((a) => a.name).sort();
    accountSel.replaceChildren(h('option', {value: ''}, 'all accounts'),
                               ...names.map((n) => h('option', {value: n}, n)));
    accountSel.value = names.includes(current) ? current : '';
  }

  const recompute = () => {
    const q = search.value.trim().toLowerCase();
    const stateOk = kStateFilters[stateSel.value];
    const account = accountSel.value;
    const out = [];
    for (const j of store.jobs.values()) {
      if (!stateOk(j.state)) continue;
      if (account && j.account !== account) continue;
      if (q) {
        const hay = `#${j.id} ${j.name} ${j.user} ${j.account} ${j.node} ${j.reason ? j.reason.code : ''} ${j.state}`.toLowerCase();
        if (!hay.includes(q)) continue;
      }
      out.push(j);
    }
    out.sort(kSorts[sortSel.value]);
    list.setItems(out);
    count.textContent = `${out.length.toLocaleString()} of ${store.jobs.size.toLocaleString()} jobs`;
  };
  const recomputeSoon = throttled(recompute, 250);
  for (const el of [stateSel, accountSel, sortSel]) el.addEventListener('change', recompute);
  search.addEventListener('input', recomputeSoon);

  root.append(
    h('div', {class: 'view-head'}, h('h2', null, 'Queue'),
      h('span', {class: 'sub'}, 'Pending and running jobs, live. Click a job for its details.')),
    h('div', {class: 'filters'}, search, stateSel, accountSel, sortSel, count),
    list.el);
  fillAccounts();
  recompute();

  // Pending reasons and estimates change with every scheduling pass, without an event: the rows
  // in view are fetched again when they are older than 10 s (2 s while they have no reason yet, at
  // once when known only from an event).
  const refreshVisible = () => {
    const now = Date.now();
    const stale = list.visibleItems()
      .filter((j) => !j.fetched || (j.state === 'pending' && now - j.fetched > (j.reason ? 10000 : 2000)))
      .slice(0, 40).map((j) => j.id);
    if (stale.length) store.refreshJobs(stale);
  };
  const timer = setInterval(refreshVisible, 2000);
  const refreshSoon = throttled(refreshVisible, 500);
  list.el.addEventListener('scroll', refreshSoon, {passive: true});

  const off = store.subscribe((c) => {
    if (c.accounts) fillAccounts();
    if (c.jobs === true || (c.jobs && c.jobs.size)) recomputeSoon();
  });
  return () => {
    off();
    clearInterval(timer);
  };
}
