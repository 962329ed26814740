// The level timeline: one row per level, base first, filled as the levels arrive.

import { el, setText } from "./dom.js";
import { formatBytes, formatMs, formatPsnr, formatSize, formatSsim } from "./format.js";

const COLUMNS = ["level", "size", "payload", "received", "arrival", "decode", "psnr", "ssim"];

export class Timeline {
  /** tbody: the table body; fill: the bar that shows bytes received out of the total. */
  constructor(tbody, fill) {
    this.tbody = tbody;
    this.fill = fill;
    this.rows = new Map();
    this.totalBytes = 0;
    this.levels = 0;
  }

  /** Start over with pending rows for levels `levels` (the base) down to 0 (full size). */
  reset(levels = 0, totalBytes = 0) {
    this.tbody.replaceChildren();
    this.rows.clear();
    this.levels = levels;
    this.totalBytes = totalBytes;
    this.#setFill(0);
    for (let level = levels; level >= 0; level -= 1) this.#row(level);
  }

  /** Fill a level's row from its "level" message. */
  addLevel(message) {
    const row = this.#row(message.level);
    const cells = row.cells;
    setText(cells.size, formatSize(message.width, message.height));
    setText(cells.payload, formatBytes(message.payload_bytes));
    setText(cells.received, formatBytes(message.total_bytes));
    setText(cells.arrival, formatMs(message.arrival_ms));
    setText(cells.decode, formatMs(message.decode_ms));
    setText(cells.psnr, formatPsnr(message.psnr));
    setText(cells.ssim, formatSsim(message.ssim));
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

  /** Rows that have arrived, in table order (the level numbers). */
  arrivedLevels() {
    return [...this.tbody.querySelectorAll("tr[data-state=arrived]")].map((tr) => Number(tr.dataset.level));
  }

  #setFill(fraction) {
    this.fill.style.transform = `scaleX(${Math.max(0, Math.min(1, fraction))})`;
  }

  #row(level) {
    let row = this.rows.get(level);
    if (row) return row;
    const cells = {};
    const tds = COLUMNS.map((name) => {
      const td = el(name === "level" ? "th" : "td", { className: `col-${name}` }, name === "level" ? "" : "·");
      if (name === "level") td.scope = "row";
      cells[name] = td;
      return td;
    });
    const label = level === 0 ? `L${level} · full` : level === this.levels ? `L${level} · base` : `L${level}`;
    setText(cells.level, label);
    const node = el("tr", { dataset: { level: String(level), state: "pending" } }, tds);
    row = { node, cells };
    this.rows.set(level, row);
    // Keep rows ordered base first (highest level number at the top).
    const after = [...this.rows.entries()].filter(([l]) => l > level).sort((a, b) => a[0] - b[0])[0];
    if (after) after[1].node.after(node);
    else this.tbody.prepend(node);
    return row;
  }
}
