// The racers on screen: hideNet's stage and one stage per contender, each with its link clock.
//
// A racer's link clock runs from the moment the stream started (meta) and stops at the time
// of its final picture. It never runs past a piece that is due but not shown yet (the
// server is still decoding it), so it never has to jump back; Stop freezes it where it is.

import { $, setText, show } from "./dom.js";
import { formatClock } from "./format.js";
import { Stage } from "./canvas.js";

export class Racer {
  constructor({ key, label, series, figure, image }) {
    this.key = key; // "hidenet" or a contender's key ("pjpeg:90")
    this.label = label; // "hideNet", "Progressive JPEG q90"
    this.series = series; // chart series and colour: "hidenet", "c1".."c3"
    this.figure = figure;
    this.stage = new Stage($("[data-field=canvas]", figure), image);
    this.clock = $("[data-field=clock]", figure);
    this.clockLabel = $("[data-field=clock-label]", figure);
    this.status = $("[data-field=status]", figure);
    this.badge = $("[data-field=badge]", figure);
    this.flag = $("[data-field=flag]", figure);
    setText($("[data-field=title]", figure), label);
    this.reset();
  }

  /** Before a stream: nothing shown, no clock. */
  reset(text = "") {
    this.due = null; // the times at which the planned pieces are due, or null when unknown
    this.shown = 0; // pieces shown
    this.last = null; // the last message shown
    this.finalAt = null; // the time of the final picture, once shown
    this.frozenAt = null; // where Stop froze the clock
    this.lagMs = 0; // the most a picture came after it was due
    this.stage.clear(`${this.label}: waiting for the first picture`);
    this.flagText(null);
    setText(this.badge, "");
    setText(this.clock, "–");
    setText(this.status, text);
  }

  /** The stream started: `due` lists when each piece is due on the clock (null: not known). */
  start(due, clockLabel) {
    this.due = due;
    setText(this.clockLabel, clockLabel);
  }

  /** A picture arrived; `t` is its time on the race's clock, `lag` how long after its bytes the server sent it. */
  show(bitmap, t, lag, label, final) {
    this.stage.show(bitmap, `${this.label}: ${this.figure.dataset.imageName ?? ""} ${label}`.trim());
    this.shown += 1;
    this.lagMs = Math.max(this.lagMs, lag);
    if (final) this.finalAt = t;
  }

  /** The clock's reading at `now` (ms since the stream started), or null before it started. */
  reading(now) {
    if (this.finalAt != null) return this.finalAt;
    if (this.frozenAt != null) return this.frozenAt;
    if (now == null) return null;
    const next = this.due?.[this.shown];
    return next == null ? now : Math.min(now, next);
  }

  /** Paint the clock. */
  tick(now) {
    const value = this.reading(now);
    setText(this.clock, value == null ? "–" : formatClock(value));
  }

  /** Stop: the clock stays where it is (if the race had started). */
  freeze(now) {
    if (this.finalAt == null && this.frozenAt == null && now != null) this.frozenAt = this.reading(now);
    this.tick(now);
  }

  get finished() {
    return this.finalAt != null;
  }

  /** A word over the picture ("Stopped"), or none. */
  flagText(text) {
    setText(this.flag, text ?? "");
    show(this.flag, Boolean(text));
  }
}

/** The stages: hideNet's, and the contenders' made from a <template>. */
export class RaceStages {
  constructor(section, template, image) {
    this.section = section;
    this.template = template;
    this.image = image;
    const hidenet = $("#stage-hidenet", section);
    hidenet.dataset.imageName = image.name;
    this.hidenet = new Racer({ key: "hidenet", label: "hideNet", series: "hidenet", figure: hidenet, image });
    this.contenders = [];
  }

  /** Show these contenders ([{key, label, slot}]) beside hideNet; stages are reused when nothing changed. */
  setContenders(list) {
    const same = list.length === this.contenders.length && list.every((c, i) => c.key === this.contenders[i].key);
    if (same) return false;
    for (const racer of this.contenders) racer.figure.remove();
    this.contenders = list.map((c) => {
      const figure = this.template.content.firstElementChild.cloneNode(true);
      const series = `c${c.slot}`;
      figure.id = `stage-${series}`;
      figure.dataset.stage = series;
      figure.dataset.contender = c.key;
      figure.dataset.imageName = this.image.name;
      figure.classList.add(`stage-${series}`);
      this.section.append(figure);
      return new Racer({ key: c.key, label: c.label, series, figure, image: this.image });
    });
    this.section.dataset.count = String(1 + this.contenders.length);
    return true;
  }

  /** Every racer, hideNet first. */
  all() {
    return [this.hidenet, ...this.contenders];
  }

  byKey(key) {
    return this.all().find((r) => r.key === key) ?? null;
  }

  bySlot(slot) {
    return this.contenders.find((r) => r.series === `c${slot}`) ?? null;
  }

  setMode(view) {
    for (const r of this.all()) r.stage.setMode(view);
  }
}
