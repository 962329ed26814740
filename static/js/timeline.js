// hideNet's timeline: one row per piece of the stream, filled as the pieces arrive.
//
// What a row is and which columns it has are data (ROWS and COLUMNS below), not code: a row
// is keyed by `ROWS.key(item)` for both the server's plan (meta.schedule) and the messages
// that fill it, so a protocol that sends several messages per level only changes ROWS.

import { el, setText } from "./dom.js";
import { formatBytes, formatMs, formatPsnr, formatSize, formatSsim } from "./format.js";

/** How a plan item or a message maps to a row: its key, its label and its data attributes. */
export const ROWS = {
  key: (item) => String(item.level),
  label: (item, meta) =>
    item.level === 0 ? `L${item.level} · full` : item.level === meta.baseLevel ? `L${item.level} · base` : `L${item.level}`,
  data: (item) => ({ level: String(item.level) }),
  order: (item) => -item.level, // base (highest level) first
};

/** The columns after the row label: heading, the cell of an arrived message, the cell of a planned one. */
export const COLUMNS = [
  { key: "size", head: "Size", value: (m) => formatSize(m.width, m.height) },
  { key: "payload", head: "Payload", value: (m) => formatBytes(m.payload_bytes), plan: (p) => formatBytes(p.payload_bytes) },
  { key: "received", head: "Received", value: (m) => formatBytes(m.total_bytes), plan: (p) => formatBytes(p.total_bytes) },
  {
    key: "arrival", head: "Arrival", value: (m) => formatMs(m.arrival_ms),
    plan: (p) => (p.arrival_ms == null ? null : `due ${formatMs(p.arrival_ms)}`),
  },
  { key: "decode", head: "Decode", value: (m) => formatMs(m.decode_ms) },
  { key: "psnr", head: "PSNR", value: (m) => formatPsnr(m.psnr) },
  { key: "ssim", head: "SSIM", value: (m) => formatSsim(m.ssim) },
];

export class Timeline {
  /** head: the header row; tbody: the table body; fill: the bar that shows bytes received out of the total. */
  constructor(head, tbody, fill) {
    this.tbody = tbody;
    this.fill = fill;
    this.rows = new Map();
    this.meta = { baseLevel: 0 };
    this.totalBytes = 0;
    head.replaceChildren(
      el("th", { scope: "col" }, "Level"),
      ...COLUMNS.map((c) => el("th", { scope: "col", className: `col-${c.key}` }, c.head)),
    );
  }

  /**
   * Start over. `schedule` is the server's plan (meta.schedule): a pending row per item, greyed,
   * with what the plan says (a plan may leave out sizes and times: those cells stay empty).
   */
  reset({ baseLevel = 0, totalBytes = 0, schedule = [] } = {}) {
    this.tbody.replaceChildren();
    this.rows.clear();
    this.meta = { baseLevel };
    this.totalBytes = totalBytes || 0;
    this.#setFill(0);
    for (const item of schedule) {
      const row = this.#row(item);
      for (const c of COLUMNS) {
        const text = c.plan?.(item);
        if (text != null) setText(row.cells[c.key], text);
      }
    }
  }

  /** Fill a row from a message of the stream. */
  add(message) {
    const row = this.#row(message);
    for (const c of COLUMNS) setText(row.cells[c.key], c.value(message));
    row.node.dataset.state = "arrived";
    row.node.classList.add("just-arrived");
    setTimeout(() => row.node.classList.remove("just-arrived"), 900);
    if (this.totalBytes) this.#setFill(message.total_bytes / this.totalBytes);
  }

  /** The stream ended: rows that never arrived are marked skipped, the bar is full. */
  finish() {
    for (const row of this.rows.values()) {
      if (row.node.dataset.state === "pending") {
        row.node.dataset.state = "skipped";
        setText(row.cells.arrival, "not sent");
      }
    }
    this.#setFill(1);
  }

  #setFill(fraction) {
    this.fill.style.transform = `scaleX(${Math.max(0, Math.min(1, fraction))})`;
  }

  #row(item) {
    const key = ROWS.key(item);
    let row = this.rows.get(key);
    if (row) return row;
    const label = el("th", { scope: "row", className: "col-level" }, ROWS.label(item, this.meta));
    const cells = Object.fromEntries(COLUMNS.map((c) => [c.key, el("td", { className: `col-${c.key}` }, "·")]));
    const node = el("tr", { dataset: { ...ROWS.data(item), state: "pending" } }, label, ...Object.values(cells));
    row = { node, cells, order: ROWS.order(item) };
    this.rows.set(key, row);
    // Keep rows in stream order: before the first row that comes later.
    const next = [...this.rows.values()].filter((r) => r !== row && r.order > row.order).sort((a, b) => a.order - b.order)[0];
    if (next) next.node.before(node);
    else this.tbody.append(node);
    return row;
  }
}
