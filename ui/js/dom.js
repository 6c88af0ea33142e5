// Small DOM and formatting helpers shared by the views. No framework: elements are built with
// `h()` and views re-render only the parts that changed.

// h('div', {class: 'x', onclick: fn, dataset: {id: 1}}, child, 'text', [more children])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function badge(value, extra) {
  return h('span', {class: `badge ${value}`, 'data-testid': extra}, value.replace('_', ' '));
}

const kTerminal = new Set(['completed', 'failed', 'cancelled', 'timeout', 'node_fail', 'preempted']);
export function isTerminal(state) {
  return kTerminal.has(state);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

// "in 3 min", "5 s ago".
export function fmtRelative(iso, now = Date.now()) {
  if (!iso) return '';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return '';
  const s = Math.round((t - now) / 1000);
  const a = Math.abs(s);
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min`
             : a < 86400 ? `${(a / 3600).toFixed(1)} h` : `${(a / 86400).toFixed(1)} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString(undefined, {maximumFractionDigits: digits});
}

// Runs `fn` at most once per animation frame however often it is asked for.
export function frameBatched(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

// Runs `fn` at most once every `ms`, the last call always honoured.
export function throttled(fn, ms) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn();
    }, wait);
  };
}

export function toast(message, kind = '') {
  const el = h('div', {class: `toast ${kind}`, role: 'status'}, message);
  document.getElementById('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 7000 : 3500);
}

// Asks for confirmation in the page's dialog; resolves to null when cancelled, else to the reason
// typed (empty when `withReason` is false).
export function confirmDialog({title, text, withReason = false, ok = 'Confirm', danger = false}) {
  const dialog = document.getElementById('confirm');
  dialog.querySelector('h2').textContent = title;
  dialog.querySelector('.dialog-text').textContent = text;
  dialog.querySelector('.dialog-reason').hidden = !withReason;
  const input = dialog.querySelector('input[name="reason"]');
  input.value = '';
  const button = dialog.querySelector('[value="ok"]');
  button.textContent = ok;
  button.className = danger ? 'danger' : '';
  dialog.returnValue = '';
  dialog.showModal();
  if (withReason) input.focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok' ? input.value.trim() : null);
    }, {once: true});
  });
}
