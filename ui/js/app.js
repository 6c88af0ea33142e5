// The dashboard's entry point: sign-in (the token lives in sessionStorage only), the hash router,
// and the watch feed that keeps the store current.

import {Api} from './api.js';
import {clear, h, toast} from './dom.js';
import {Feed} from './feed.js';
import {Store} from './store.js';
import * as accounts from './views/accounts.js';
import * as cluster from './views/cluster.js';
import * as job from './views/job.js';
import * as nodes from './views/nodes.js';
import * as queue from './views/queue.js';

const kTokenKey = 'gsched.token';
const kRoutes = {cluster, queue, accounts, nodes, jobs: job};

const view = document.getElementById('view');
const topbar = document.querySelector('.topbar');
const signin = document.querySelector('.signin');
const live = document.querySelector('[data-testid="live"]');

let session = null;  // {api, who, store, feed}
let unmount = null;

function showSignIn(message) {
  topbar.hidden = true;
  clear(view);
  signin.hidden = false;
  const err = signin.querySelector('.error');
  err.textContent = message || '';
  err.hidden = !message;
  signin.querySelector('input').focus();
}

function signOut(message) {
  sessionStorage.removeItem(kTokenKey);
  if (session) session.feed.stop();
  if (unmount) unmount();
  unmount = null;
  session = null;
  showSignIn(message);
}

async function start(token) {
  const api = new Api(token);
  const who = await api.get('/v1/whoami');
  if (who.role === 'worker') throw new Error('a worker token cannot use the dashboard');
  sessionStorage.setItem(kTokenKey, token);
  const store = new Store(api, who);
  signin.hidden = true;
  topbar.hidden = false;
  document.querySelector('[data-testid="who"]').textContent =
    `${who.user} · ${who.role}${who.accounts && who.accounts.length ? ` · ${who.accounts.join(', ')}` : ''}`;
  view.replaceChildren(h('div', {class: 'empty'}, 'Loading…'));
  const since = await store.loadAll();
  const feed = new Feed({
    token,
    since,
    onEvents: (events) => store.apply(events),
    onResync: async () => {
      // Part of the log we needed is gone: start again from a fresh picture.
      try {
        feed.since = Math.max(feed.since, await store.loadAll());
      } catch (e) {
        toast(`reload failed: ${e.message}`, 'error');
      }
    },
    onStatus: (s) => {
      live.dataset.state = s;
      live.textContent = s;
    },
    onTrouble: async () => {
      try {
        await api.get('/v1/whoami');
      } catch (e) {
        if (e.status === 401) signOut('Your token is no longer accepted. Sign in again.');
      }
    },
  });
  session = {api, who, store, feed};
  feed.start();
  route();
}

function route() {
  if (!session) return;
  const hash = location.hash.replace(/^#\/?/, '');
  const [path] = hash.split('?');
  const [name, ...params] = path.split('/').filter(Boolean);
  const mod = kRoutes[name];
  if (!mod) {
    location.replace('#/cluster');
    return;
  }
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.view === name || (name === 'jobs' && a.dataset.view === 'queue'));
  }
  if (unmount) unmount();
  clear(view);
  const {api, who, store} = session;
  unmount = mod.mount(view, {api, who, store, params}) || null;
}

signin.querySelector('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = signin.querySelector('input');
  const button = signin.querySelector('button');
  button.disabled = true;
  try {
    await start(input.value.trim());
    input.value = '';
  } catch (e) {
    sessionStorage.removeItem(kTokenKey);
    showSignIn(e.status === 401 ? 'That token is not valid (or has expired).' : e.message);
  } finally {
    button.disabled = false;
  }
});
document.querySelector('[data-testid="sign-out"]').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);

const saved = sessionStorage.getItem(kTokenKey);
if (saved) {
  start(saved).catch((e) => signOut(e.status === 401 ? 'Your session has ended. Sign in again.' : e.message));
} else {
  showSignIn();
}
