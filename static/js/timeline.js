// hideNet's timeline: one row per chunk of the stream, filled as the chunks arrive. A
// layered stream goes down the pyramid once per quality layer, so a level has a row per
// layer (and per part, where a level's pass comes in parts); "Error" is the most any pixel
// of the full image can still be off after the chunk ("–": some level not coded yet).
//
// What a row is and which columns it has are data (ROWS and COLUMNS below), not code: a row
// is keyed by `ROWS.key(item)` for both the server's plan (meta.schedule) and the messages
// that fill it, so a protocol that sends several messages per level only changes ROWS.

import { el, setText } from "./dom.js";
import { formatBytes, formatMs, formatPsnr, formatSize, formatSsim, NBSP } from "./format.js";

/** How a plan item or a message maps to a row: its key, its label and its data attributes. */
export const ROWS = {
  key: (item) => String(item.index),
  label: (item, meta) => {
    const level = item.level === 0 ? "L0 · full" : item.level === meta.baseLevel ? `L${item.level} · base` : `L${item.level}`;
    const layer = meta.layers > 1 ? `${item.layer + 1}: ` : "";
    const part = item.parts > 1 ? ` (${item.part + 1}/${item.parts})` : "";
    return `${layer}${level}${part}`;
  },
  data: (item) => ({ level: String(item.level), layer: String(item.layer ?? 0), index: String(item.index) }),
  order: (item) => item.index, // stream order
};

/** The most a pixel can be off after a chunk: "exact", "≤ 4", or "–" (not bounded yet). */
function formatError(value) {
  if (value == null) return "–";
  return value === 0 ? "exact" : `≤${NBSP}${value}`;
}

/**
 * A chunk's error bound; "· est." when the picture shown estimates the levels a later layer has not
 * refined yet (inside the intervals the earlier layer coded: within twice the bound, docs/viewer.md).
 */
function errorCell(m) {
  return formatError(m.max_error) + (m.estimated ? `${NBSP}·${NBSP}est.` : "");
}

function psnrCell(m) {
  return formatPsnr(m.psnr) + (m.psnr_level ? ` @${NBSP}1/${2 ** m.psnr_level}` : "");
}

/** A chunk without a frame of its own: the frame that shows it (a later chunk's, in stream order). */
function supersededCell(m) {
  return `in #${m.superseded_by + 1}'s frame`;
}

/** The server's decoding of a chunk; a first view's frame comes from the encoder's own state, not decoded. */
function decodeCell(m) {
  if (m.superseded_by != null) return "";
  return m.frame_from === "encoder" ? "from encoder" : formatMs(m.decode_ms);
}

/** The columns after the row label: heading, the cell of an arrived message, the cell of a planned one. */
export const COLUMNS = [
  { key: "size", head: "Size", value: (m) => formatSize(m.width, m.height) },
  { key: "error", head: "Error", value: errorCell, plan: (p) => formatError(p.max_error) },
  { key: "payload", head: "Payload", value: (m) => formatBytes(m.payload_bytes), plan: (p) => formatBytes(p.payload_bytes) },
  { key: "received", head: "Received", value: (m) => formatBytes(m.total_bytes), plan: (p) => formatBytes(p.total_bytes) },
  {
    key: "arrival", head: "Arrival", value: (m) => formatMs(m.arrival_ms),
    plan: (p) => (p.arrival_ms == null ? null : `due ${formatMs(p.arrival_ms)}`),
  },
  { key: "decode", head: "Decode", value: decodeCell },
  { key: "psnr", head: "PSNR", value: (m) => (m.superseded_by == null ? psnrCell(m) : supersededCell(m)) },
  { key: "ssim", head: "SSIM", value: (m) => (m.superseded_by == null ? formatSsim(m.ssim) : "") },
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
      el("th", { scope: "col" }, "Chunk"),
      ...COLUMNS.map((c) => el("th", { scope: "col", className: `col-${c.key}` }, c.head)),
    );
  }

  /**
   * Start over. `schedule` is the server's plan (meta.schedule): a pending row per item, greyed,
   * with what the plan says (a plan may leave out sizes and times: those cells stay empty).
   */
  reset({ baseLevel = 0, totalBytes = 0, schedule = [], layers = 1 } = {}) {
    this.tbody.replaceChildren();
    this.rows.clear();
    this.meta = { baseLevel, layers };
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
    row.node.dataset.state = message.superseded_by == null ? "arrived" : "superseded";
    row.node.classList.add("just-arrived");
    setTimeout(() => row.node.classList.remove("just-arrived"), 900);
    // the stream's size is not known while it is being encoded: the share of its chunks then
    if (this.totalBytes) this.#setFill(message.total_bytes / this.totalBytes);
    else if (message.chunks) this.#setFill((message.index + 1) / message.chunks);
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
