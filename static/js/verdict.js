// The verdict table: one row per racer, filled live from the pictures as they come, then
// replaced by the server's verdict (done.verdict), computed from the same events.

import { el, setText, show } from "./dom.js";
import { NBSP, formatBytes, formatClock, formatShare } from "./format.js";

const THRESHOLDS = [30, 35, 40];
/** Column key -> heading (also the label of each cell on a phone, where rows become cards). */
const COLUMNS = {
  first: "First picture",
  db30: "30 dB",
  db35: "35 dB",
  db40: "40 dB",
  final: "Final",
  bytes: "Bytes",
  best: "Best picture",
};

function finalText(t, psnr) {
  if (t == null) return "–";
  return psnr == null ? `${formatClock(t)} · exact` : `${formatClock(t)} · ${psnr.toFixed(1)}${NBSP}dB`;
}

export class VerdictTable {
  constructor(tbody, sentence, note) {
    this.tbody = tbody;
    this.sentence = sentence;
    this.note = note;
    this.rows = new Map();
  }

  /** A row per racer ([{key, label, series}]), every figure still open. */
  reset(racers) {
    this.tbody.replaceChildren();
    this.rows.clear();
    for (const r of racers) {
      const cells = Object.fromEntries(
        Object.entries(COLUMNS).map(([key, head]) => [key, el("td", { className: `col-${key}`, dataset: { label: head } }, "–")]),
      );
      const name = el("th", { scope: "row", className: "col-racer" },
        el("span", { className: `swatch swatch-${r.series}`, attrs: { "aria-hidden": "true" } }), r.label);
      const node = el("tr", { dataset: { racer: r.key } }, name, ...Object.values(cells));
      this.tbody.append(node);
      this.rows.set(r.key, { cells, first: null, reached: {} });
    }
    this.say("");
    this.setNote("");
  }

  /** A racer's picture changed at time `t` (ms) to `psnr` dB (null: exact), after `bytes`. */
  event(key, t, bytes, psnr) {
    const row = this.rows.get(key);
    if (!row) return;
    if (row.first == null) {
      row.first = t;
      this.#set(row, "first", formatClock(t), t);
    }
    for (const db of THRESHOLDS) {
      if (row.reached[db] == null && (psnr == null || psnr >= db)) {
        row.reached[db] = t;
        this.#set(row, `db${db}`, formatClock(t), t);
      }
    }
    this.#set(row, "bytes", formatBytes(bytes), bytes);
  }

  /** A racer's final picture came. */
  final(key, t, psnr, bytes) {
    const row = this.rows.get(key);
    if (!row) return;
    this.#set(row, "final", finalText(t, psnr), t);
    this.#set(row, "bytes", formatBytes(bytes), bytes);
  }

  /** The server's verdict: every figure, the best-picture shares and the sentence. */
  done(verdict) {
    for (const v of verdict.racers) {
      const row = this.rows.get(v.key);
      if (!row) continue;
      this.#set(row, "first", v.first_ms == null ? "–" : formatClock(v.first_ms), v.first_ms);
      for (const db of THRESHOLDS) {
        const t = v.to_db_ms[String(db)];
        this.#set(row, `db${db}`, t == null ? "never" : formatClock(t), t);
      }
      this.#set(row, "final", finalText(v.final_ms, v.final_psnr), v.final_ms);
      this.#set(row, "bytes", formatBytes(v.bytes), v.bytes);
      this.#set(row, "best", formatShare(v.best_share), v.best_share);
    }
    this.say(verdict.sentence);
  }

  say(text) {
    setText(this.sentence, text);
    show(this.sentence, Boolean(text));
  }

  setNote(text) {
    setText(this.note, text);
    show(this.note, Boolean(text));
  }

  #set(row, key, text, value) {
    const cell = row.cells[key];
    setText(cell, text);
    if (value == null) delete cell.dataset.value;
    else cell.dataset.value = String(value);
  }
}
