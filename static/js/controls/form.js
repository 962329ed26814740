// The settings form: reads and writes the viewer state, shows only the relevant fields.

import { $, show } from "../dom.js";

/** Settings whose change restarts the stream (zoom does not). */
const RESTARTS = new Set(["link", "down_kbps", "rtt_ms", "mode", "max_error", "generative_levels", "preview", "race"]);

export class ControlsForm {
  /** onChange(state, restart): called after the user changes a setting. */
  constructor(form, { onChange, onReplay }) {
    this.form = form;
    this.inputs = form.elements;
    this.onChange = onChange;
    form.addEventListener("change", (event) => {
      const name = event.target.name;
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
    const inputs = this.form.querySelectorAll("input[type=number]");
    return Object.fromEntries([...inputs].map((input) => [input.name, [Number(input.min), Number(input.max)]]));
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
      preview: i.preview.checked,
      race: i.race.checked,
      view: i.view.value,
    };
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
    i.preview.checked = state.preview;
    i.race.checked = state.race;
    i.view.value = state.view;
    this.#sync();
  }

  /** Change one setting as if the user did (used by keyboard shortcuts). */
  toggle(name, value) {
    const input = this.inputs[name];
    if (input instanceof RadioNodeList) input.value = value;
    else input.checked = value;
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

  #sync() {
    const state = this.get();
    show($("#custom-link", this.form), state.link === "custom");
    show($("#max-error-field", this.form), state.mode === "near");
    show($("#generative-field", this.form), state.mode === "generative");
  }
}
