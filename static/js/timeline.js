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

  /**
   * Start over with a pending row per level, base first. `schedule` is the server's plan
   * ([{level, payload_bytes, total_bytes, arrival_ms}], from "meta"): pending rows show it greyed.
   */
  reset({ baseLevel = 0, totalBytes = 0, schedule = [] } = {}) {
    this.tbody.replaceChildren();
    this.rows.clear();
    this.levels = baseLevel;
    this.totalBytes = totalBytes;
    this.#setFill(0);
    for (const step of schedule) {
      const row = this.#row(step.level);
      setText(row.cells.payload, formatBytes(step.payload_bytes));
      setText(row.cells.received, formatBytes(step.total_bytes));
      setText(row.cells.arrival, `due ${formatMs(step.arrival_ms)}`);
    }
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
