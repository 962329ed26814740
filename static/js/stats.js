// The totals at a glance: <dd data-stat="..."> values in the stats panel.

import { $$, setText } from "./dom.js";

export class Stats {
  constructor(root) {
    this.root = root;
    this.fields = new Map($$("[data-stat]", root).map((node) => [node.dataset.stat, node]));
  }

  /** Set one value ("first", "final", "bytes", "psnr", "link", "jpeg-first", ...). */
  set(name, text) {
    const node = this.fields.get(name);
    if (node) setText(node, text);
  }

  /** Blank every value except the link. */
  reset() {
    for (const [name, node] of this.fields) if (name !== "link") setText(node, "–");
  }

  /** Show or hide the race-only values. */
  setRace(on) {
    for (const node of $$("[data-race-only]", this.root)) node.hidden = !on;
  }
}
