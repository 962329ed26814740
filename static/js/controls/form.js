// The settings form: reads and writes the viewer state, shows only the relevant fields.

import { $, $$, show } from "../dom.js";
import { RACE_DEFAULT } from "./urlstate.js";

/** Settings whose change restarts the stream (zoom does not). */
const RESTARTS = new Set([
  "link", "down_kbps", "rtt_ms", "mode", "max_error", "generative_levels", "stream", "preview", "race", "contender",
  "quality",
]);

export class ControlsForm {
  /** onChange(state, restart): called after the user changes a setting. */
  constructor(form, { onChange, onReplay }) {
    this.form = form;
    this.inputs = form.elements;
    this.onChange = onChange;
    this.slots = $$("select[name=contender]", form).map((select) => ({
      select,
      quality: $(`#quality-${select.dataset.slot}`, form),
      field: $(`#quality-${select.dataset.slot}`, form).closest(".quality"),
    }));
    form.addEventListener("change", (event) => {
      const name = event.target.name;
      if (name === "contender") this.#defaultQuality(this.slots.find((s) => s.select === event.target));
      if (name === "race" && event.target.checked && !this.#keys().length) this.slots[0].select.value = RACE_DEFAULT;
      if (!this.#valid(event.target)) return;
      this.#sync();
      onChange(this.get(), RESTARTS.has(name));
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (![...form.querySelectorAll("input")].every((input) => this.#valid(input))) return;
      onReplay(this.get());
    });
  }

  /** The link preset ids offered by the server, in menu order. */
  linkIds() {
    return [...this.inputs.link.options].map((o) => o.value).filter((v) => v !== "custom");
  }

  /** The range of each number setting, [min, max], as the server set it on the inputs. */
  limits() {
    const inputs = this.form.querySelectorAll("input[type=number]:not([name=quality])");
    return Object.fromEntries([...inputs].map((input) => [input.name, [Number(input.min), Number(input.max)]]));
  }

  /** The contenders the server offers: [{id, name, quality: {default, min, max} | null}]. */
  contenders() {
    return [...this.slots[0].select.options].filter((o) => o.value).map((o) => ({
      id: o.value,
      name: o.textContent,
      quality: o.dataset.quality
        ? { default: Number(o.dataset.quality), min: Number(o.dataset.qualityMin), max: Number(o.dataset.qualityMax) }
        : null,
    }));
  }

  /** The state the form shows now. */
  get() {
    const i = this.inputs;
    return {
      link: i.link.value,
      down_kbps: Number(i.down_kbps.value),
      rtt_ms: Number(i.rtt_ms.value),
      mode: i.mode.value,
      max_error: Number(i.max_error.value),
      generative_levels: Number(i.generative_levels.value),
      stream: i.stream.value,
      preview: i.preview.checked,
      race: i.race.checked ? this.#keys() : [],
      view: i.view.value,
    };
  }

  /** The contenders chosen in the slots, as keys ("pjpeg:90"), each once. */
  #keys() {
    const keys = [];
    for (const { select, quality } of this.slots) {
      const option = select.selectedOptions[0];
      if (!option?.value) continue;
      const key = option.dataset.quality ? `${option.value}:${Number(quality.value)}` : option.value;
      if (!keys.includes(key)) keys.push(key);
    }
    return keys;
  }

  /** Show a state in the form (does not call onChange). */
  set(state) {
    const i = this.inputs;
    i.link.value = state.link;
    i.down_kbps.value = String(state.down_kbps);
    i.rtt_ms.value = String(state.rtt_ms);
    i.mode.value = state.mode;
    i.max_error.value = String(state.max_error);
    i.generative_levels.value = String(state.generative_levels);
    i.stream.value = state.stream;
    i.preview.checked = state.preview;
    i.race.checked = state.race.length > 0;
    const race = state.race.length ? state.race : [RACE_DEFAULT];
    this.slots.forEach((slot, n) => {
      const [id, quality] = (race[n] ?? "").split(":");
      slot.select.value = id ?? "";
      if (slot.select.selectedIndex < 0) slot.select.selectedIndex = 0;
      this.#defaultQuality(slot);
      if (quality) slot.quality.value = quality;
    });
    i.view.value = state.view;
    this.#sync();
  }

  /** Change one setting as if the user did (used by keyboard shortcuts). */
  toggle(name, value) {
    const input = this.inputs[name];
    if (input instanceof RadioNodeList) input.value = value;
    else input.checked = value;
    if (name === "race" && value && !this.#keys().length) this.slots[0].select.value = RACE_DEFAULT;
    this.#sync();
    this.onChange(this.get(), RESTARTS.has(name));
  }

  /** The largest number of predicted levels this image allows (its level count). */
  setMaxGenerativeLevels(levels) {
    const input = this.inputs.generative_levels;
    input.max = String(Math.max(1, levels));
  }

  #valid(input) {
    if (input.type !== "number") return true;
    const ok = input.checkValidity();
    input.setAttribute("aria-invalid", String(!ok));
    if (!ok) input.reportValidity();
    return ok;
  }

  /** A slot's quality input: the chosen contender's range and default, hidden if it takes none. */
  #defaultQuality(slot) {
    const option = slot.select.selectedOptions[0];
    if (option?.dataset.quality) {
      slot.quality.min = option.dataset.qualityMin;
      slot.quality.max = option.dataset.qualityMax;
      slot.quality.value = option.dataset.quality;
    }
  }

  #sync() {
    const state = this.get();
    show($("#custom-link", this.form), state.link === "custom");
    show($("#max-error-field", this.form), state.mode === "near");
    show($("#generative-field", this.form), state.mode === "generative");
    show($("#contenders", this.form), this.inputs.race.checked);
    for (const slot of this.slots) {
      const option = slot.select.selectedOptions[0];
      show(slot.field, Boolean(option?.dataset.quality));
      slot.quality.disabled = !option?.dataset.quality;
    }
  }
}
