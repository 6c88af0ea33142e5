// One job: its state, why it waits (reason, estimated start), where it runs, the timeline of its
// events, and the tail of its output. Live: the feed's events for this job trigger a re-read.

import {badge, clear, confirmDialog, fmtDuration, fmtRelative, fmtTime, h, isTerminal, throttled,
        toast} from '../dom.js';

const kTailBytes = 32 * 1024;

function eventLabel(e) {
  const d = e.data || {};
  switch (e.type) {
    case 'job.submitted': return 'submitted';
    case 'job.state': {
      let s = `${d.from} → ${d.to}`;
      if (d.node && (d.to === 'starting' || d.to === 'running')) s += ` on ${d.node}`;
      if (d.exit_code !== undefined && d.exit_code !== null) s += `, exit ${d.exit_code}`;
      if (d.reason) s += ` (${d.reason})`;
      return s;
    }
    case 'job.held': return 'held';
    case 'job.released': return 'released';
    case 'job.cancel_requested': return `cancel requested${d.by ? ` by ${d.by}` : ''}`;
    case 'job.preempting': return 'being preempted';
    default: return e.type.replace(/^job\./, '');
  }
}

// The timeline from the job record (what happened before this page saw it), then the feed's
// events (what happened since), without counting anything twice.
function timeline(job, events) {
  const items = [];
  const sawSubmit = events.some((e) => e.type === 'job.submitted');
  if (!sawSubmit) {
    const firstSeen = events.length ? new Date(events[0].time).getTime() : Infinity;
    const before = (t) => t && new Date(t).getTime() < firstSeen;
    items.push({time: job.submit_time, text: 'submitted'});
    for (const a of job.attempts || []) {
      const where = (a.allocation || []).map((x) => x.node).join(', ');
      if (before(a.start_time)) items.push({time: a.start_time, text: `attempt ${a.attempt} started${where ? ` on ${where}` : ''}`});
      if (before(a.end_time)) {
        items.push({time: a.end_time, text: `attempt ${a.attempt} ended: ${a.state}${a.exit_code !== null && a.exit_code !== undefined ? `, exit ${a.exit_code}` : ''}`});
      }
    }
    if (!events.length && job.state === 'pending' && job.attempt === 0) items.push({time: null, text: 'waiting'});
  }
  for (const e of events) items.push({time: e.time, text: eventLabel(e), live: true});
  return items;
}

export function mount(root, {store, api, params}) {
  const id = Number(params[0]);
  const head = h('div', {class: 'view-head'});
  const left = h('div', {class: 'panel'});
  const right = h('div', {class: 'panel'});
  const logPanel = h('div', {class: 'panel'});
  const logPre = h('pre', {class: 'log', 'data-testid': 'log'}, 'loading…');
  root.append(head, h('div', {class: 'job-grid'}, left, right), logPanel);
  logPanel.append(h('div', {class: 'view-head'}, h('h3', null, 'Output (tail)')), logPre);

  let job = null;
  let gone = false;
  let logOffset = null;
  let logText = '';
  let logGone = false;  // The node keeps no output for this attempt (a simulated node, say).

  async function action(name) {
    if (name === 'cancel') {
      const ok = await confirmDialog({title: `Cancel job #${id}?`, text: 'A running job gets its grace period, then is killed.',
                                      ok: 'Cancel job', danger: true});
      if (ok === null) return;
    }
    try {
      await api.post(`/v1/jobs/${id}/${name}`);
      toast(`#${id}: ${name} done`);
      load();
    } catch (e) {
      toast(`${name}: ${e.message}`, 'error');
    }
  }

  function render() {
    if (!job) return;
    const active = !isTerminal(job.state);
    clear(head).append(...[
      h('h2', null, `#${job.id} ${job.spec.name || ''}`),
      h('span', {'data-testid': 'job-state', 'data-state': job.state}, badge(job.state)),
      job.held ? badge('held') : null,
      h('span', {class: 'sub'}, `${job.user} · ${job.spec.account}`),
      h('span', {class: 'actions'},
        job.state === 'pending' ? h('button', {class: 'ghost', 'data-testid': job.held ? 'release' : 'hold',
                                               onclick: () => action(job.held ? 'release' : 'hold')},
                                    job.held ? 'Release' : 'Hold') : null,
        active ? h('button', {class: 'danger', 'data-testid': 'cancel', onclick: () => action('cancel')}, 'Cancel') : null,
        h('a', {class: 'button ghost', href: '#/queue'}, 'Back to queue')),
    ].filter(Boolean));

    const s = job.spec;
    const types = Array.isArray(s.gpu_type) ? s.gpu_type.join(' | ') : s.gpu_type;
    const facts = [
      ['GPUs', `${s.nodes} node(s) × ${s.gpus_per_node}${types ? ` ${types}` : ''}`],
      ['Image', s.image],
      ...(job.image_digest ? [['Image digest', job.image_digest]] : []),
      ['Command', (s.command || []).join(' ')],
      ['Priority', `${s.priority_class}${job.priority ? ` · ${job.priority.toFixed(3)}` : ''}`],
      ['Time limit', s.time_limit_s ? fmtDuration(s.time_limit_s) : 'none'],
      ['Submitted', fmtTime(job.submit_time)], ['Started', fmtTime(job.start_time)],
      ['Ended', fmtTime(job.end_time)], ['Attempt', String(job.attempt)],
      ['Exit code', job.exit_code === null || job.exit_code === undefined ? '—' : String(job.exit_code)],
    ];
    clear(left).append(h('h3', null, 'Job'),
      h('dl', {class: 'facts'}, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v || '—')])));
    if (job.state === 'pending' && job.reason) {
      const r = job.reason;
      const details = Object.entries(r.details || {});
      left.append(h('div', {class: 'reason-box', 'data-testid': 'pending-reason'},
        h('div', {class: 'code', 'data-testid': 'reason-code'}, r.code.replace('_', ' ')),
        h('div', {'data-testid': 'reason-message'}, r.message),
        details.length ? h('div', {class: 'numbers', style: {marginTop: '6px'}},
                           details.map(([k, v]) => `${k.replace(/_/g, ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ')) : null,
        h('div', {style: {marginTop: '6px'}, 'data-testid': 'estimated-start'},
          r.estimated_start ? `Estimated start: ${fmtTime(r.estimated_start)} (${fmtRelative(r.estimated_start)})`
                            : 'No estimated start yet.')));
    } else if (job.state === 'pending') {
      left.append(h('div', {class: 'reason-box'}, 'Waiting for the next scheduling pass.'));
    } else if (job.state === 'starting' && job.reason && job.reason.message) {
      left.append(h('div', {class: 'reason-box', 'data-testid': 'starting-reason'}, job.reason.message));
    }

    clear(right).append(h('h3', null, 'Assignment'));
    if (job.allocation && job.allocation.length) {
      right.append(h('div', {class: 'alloc', 'data-testid': 'allocation'}, job.allocation.map((a) =>
        h('div', {class: 'node-chip'}, h('a', {href: `#/nodes?q=${encodeURIComponent(a.node)}`, class: 'mono'}, a.node),
          h('div', {class: 'gpus', title: `GPUs ${a.gpus.join(', ')}`}, a.gpus.map(() => h('i'))),
          h('div', {class: 'numbers'}, `GPU ${a.gpus.join(', ')}`)))));
    } else {
      right.append(h('p', {class: 'numbers'}, active ? 'Not placed yet.' : 'Not running.'));
    }
    right.append(h('h3', {style: {marginTop: '18px'}}, 'Timeline'),
      h('ol', {class: 'timeline', 'data-testid': 'timeline'}, timeline(job, store.eventsOfJob(id)).map((it) =>
        h('li', null, h('time', null, it.time ? fmtTime(it.time) : ''), it.text))));
  }

  async function load() {
    try {
      job = await api.get(`/v1/jobs/${id}`);
      render();
      pollLog();
    } catch (e) {
      gone = e.status === 404;
      clear(head).append(h('h2', null, `Job #${id}`));
      clear(left).append(h('p', {class: 'error', 'data-testid': 'job-error'}, e.message));
    }
  }

  let logBusy = false;
  async function pollLog() {
    if (!job || logBusy || logGone || job.attempt === 0) {
      if (job && job.attempt === 0) logPre.textContent = 'No output yet: the job has not started.';
      return;
    }
    logBusy = true;
    try {
      if (logOffset === null) {
        const probe = await api.get(`/v1/jobs/${id}/logs?offset=0&limit=1`);
        logOffset = Math.max(0, (probe.size || 0) - kTailBytes);
      }
      for (let i = 0; i < 8; i++) {
        const r = await api.get(`/v1/jobs/${id}/logs?offset=${logOffset}&limit=${kTailBytes}`);
        logText = (logText + (r.data || '')).slice(-kTailBytes);
        const moved = r.next_offset > logOffset;
        logOffset = r.next_offset;
        if (r.eof || !moved) break;
      }
      logPre.textContent = logText || '(no output yet)';
      logPre.scrollTop = logPre.scrollHeight;
    } catch (e) {
      logPre.textContent = e.message;
      logGone = e.status === 404;
    } finally {
      logBusy = false;
    }
  }

  const reload = throttled(load, 300);
  const off = store.subscribe((c) => {
    if (gone) return;
    if (c.jobs instanceof Set && c.jobs.has(id)) reload();
  });
  // A pending job's reason and estimate change with every pass, without an event.
  const timer = setInterval(() => {
    if (job && job.state === 'pending') load();
    else if (job && !isTerminal(job.state)) pollLog();
  }, 3000);
  load();
  return () => {
    off();
    clearInterval(timer);
  };
}
