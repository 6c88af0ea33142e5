// A virtualised list: only the rows in view (plus a margin) exist in the DOM, so tens of
// thousands of items scroll as smoothly as ten. Rows have one fixed height.

import {clear, frameBatched, h} from './dom.js';

const kOverscan = 8;

export class VirtualList {
  // `columns`: the CSS class that lays out the grid; `header`: column titles; `cells(item)`: the
  // cells of one row; `key(item)`: a stable id; `onOpen(item)`: a click on a row.
  constructor({columns, header, cells, key, onOpen, testid, rowHeight = 34}) {
    this.cells = cells;
    this.key = key;
    this.onOpen = onOpen;
    this.rowHeight = rowHeight;
    this.items = [];
    this.rows = new Map();  // key -> row element currently shown.
    this.head = h('div', {class: `vhead ${columns}`}, header.map((t) => h('div', null, t)));
    this.spacer = h('div', {style: {position: 'relative'}});
    this.el = h('div', {class: 'vlist', 'data-testid': testid, role: 'table'}, this.head, this.spacer);
    this.columns = columns;
    this.schedule = frameBatched(() => this.render());
    this.el.addEventListener('scroll', this.schedule, {passive: true});
    if (onOpen) {
      this.el.addEventListener('click', (ev) => {
        const row = ev.target.closest('.vrow');
        if (!row || ev.target.closest('button, a')) return;
        const item = this.byKey.get(row.dataset.key);
        if (item) onOpen(item);
      });
    }
    this.byKey = new Map();
  }

  setItems(items) {
    this.items = items;
    this.byKey = new Map(items.map((it) => [String(this.key(it)), it]));
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    // Every shown row is redrawn: its item may have changed.
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.render();
  }

  // The range of item indices in view.
  range() {
    const headH = this.head.offsetHeight || this.rowHeight;
    const top = Math.max(0, this.el.scrollTop - headH);
    const first = Math.max(0, Math.floor(top / this.rowHeight) - kOverscan);
    const count = Math.ceil((this.el.clientHeight || 600) / this.rowHeight) + 2 * kOverscan;
    return [first, Math.min(this.items.length, first + count)];
  }

  visibleItems() {
    const [a, b] = this.range();
    return this.items.slice(a, b);
  }

  render() {
    const [a, b] = this.range();
    const wanted = new Set();
    for (let i = a; i < b; i++) {
      const item = this.items[i];
      const k = String(this.key(item));
      wanted.add(k);
      let row = this.rows.get(k);
      if (!row) {
        row = h('div', {class: `vrow ${this.columns}${this.onOpen ? ' clickable' : ''}`, role: 'row',
                        dataset: {key: k}, 'data-testid': `row-${k}`});
        row.append(...this.cells(item));
        this.rows.set(k, row);
        this.spacer.append(row);
      }
      row.style.top = `${i * this.rowHeight}px`;
    }
    for (const [k, row] of this.rows) {
      if (!wanted.has(k)) {
        row.remove();
        this.rows.delete(k);
      }
    }
  }

  // Redraws the rows of these keys if they are shown.
  redraw(keys) {
    for (const k of keys) {
      const row = this.rows.get(String(k));
      const item = this.byKey.get(String(k));
      if (row && item) {
        clear(row);
        row.append(...this.cells(item));
      }
    }
  }
}
