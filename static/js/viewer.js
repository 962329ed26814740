// The viewer page: wires the settings, the websocket stream, the stages, the timeline,
// the stats and the charts together. Each part lives in its own module.

import { $, setText, show } from "./dom.js";
import { formatBytes, formatClock, formatMs, formatPsnr, formatRate, formatSize } from "./format.js";
import { StreamSession, startMessage } from "./protocol.js";
import { Stage } from "./canvas.js";
import { Timeline } from "./timeline.js";
import { QualityChart } from "./chart.js";
import { Stats } from "./stats.js";
import { bindShortcuts } from "./keyboard.js";
import { ControlsForm } from "./controls/form.js";
import { parseState, saveState } from "./controls/urlstate.js";

const root = $("#viewer");
const image = {
  id: root.dataset.imageId,
  name: root.dataset.imageName,
  width: Number(root.dataset.width),
  height: Number(root.dataset.height),
};

/** One side of the race: its stage, caption clock and status line. */
function side(id) {
  const figure = $(`#stage-${id}`);
  return {
    figure,
    stage: new Stage($("[data-field=canvas]", figure), image),
    clock: $("[data-field=clock]", figure),
    status: $("[data-field=status]", figure),
    badge: $("[data-field=badge]", figure),
    stoppedAt: null, // the arrival time of its final frame, once known
    last: null,
  };
}

const sides = { hidenet: side("hidenet"), jpeg: side("jpeg") };
const timeline = new Timeline($("#timeline-body"), $("#bytes-fill"));
const stats = new Stats($("#stats"));
const charts = [
  new QualityChart($("#chart-time"), { axis: "time", series: ["hidenet", "jpeg"] }),
  new QualityChart($("#chart-bytes"), { axis: "bytes", series: ["hidenet", "jpeg"] }),
];
const errorBanner = $("#stream-error");

const form = new ControlsForm($("#controls"), {
  onChange(next, restart) {
    apply(next);
    if (restart) start();
  },
  onReplay(next) {
    apply(next);
    start();
  },
});

let state = parseState(window.location.search, form.linkIds(), form.limits());
let session = null;
let stream = null; // per-stream bookkeeping: {t0, first: {hidenet, jpeg}} (arrival of each side's first frame)
let clockFrame = 0;

function apply(next) {
  state = next;
  saveState(state);
  for (const s of Object.values(sides)) s.stage.setMode(state.view);
  $("#stages").classList.toggle("is-racing", state.race);
  show(sides.jpeg.figure, state.race);
  stats.setRace(state.race);
  show($(".legend-jpeg"), state.race);
  stats.set("link", linkText(null));
}

/** The link in words: from the stream's "meta" once it came, from the chosen preset until then. */
function linkText(meta) {
  if (state.link === "custom") return `${formatRate(state.down_kbps)}, ${state.rtt_ms} ms`;
  const option = form.inputs.link.selectedOptions[0];
  const link = meta?.link ?? {
    name: option?.textContent.split("·")[0].trim() ?? state.link,
    down_kbps: Number(option?.dataset.downKbps),
    rtt_ms: Number(option?.dataset.rttMs),
  };
  return link.down_kbps ? `${link.name} · ${formatRate(link.down_kbps)}, ${link.rtt_ms} ms` : link.name;
}

function setError(text) {
  setText(errorBanner, text ? `Stream error: ${text}` : "");
  show(errorBanner, Boolean(text));
}

function setStreamState(value) {
  root.dataset.streamState = value;
}

/** Start (or restart) the stream with the current state. */
function start() {
  session?.close();
  setError("");
  stream = { t0: performance.now(), first: {} };
  for (const [name, s] of Object.entries(sides)) {
    s.stoppedAt = null;
    s.last = null;
    s.stage.clear(`${name === "jpeg" ? "Progressive JPEG" : "hideNet"}: ${image.name}, waiting for the first frame`);
    setText(s.status, "Connecting…");
    setText(s.badge, "");
  }
  timeline.reset({ schedule: [] });
  delete sides.jpeg.figure.dataset.scans;
  stats.reset();
  stats.set("link", linkText(null));
  for (const chart of charts) chart.reset();
  setStreamState("connecting");
  session = new StreamSession(startMessage({ ...state, image: image.id }), {
    onMeta,
    onLevel,
    onRace,
    onDone,
    onError(text) {
      setError(text);
      stopClocks();
      setStreamState("error");
    },
  });
  tickClocks();
}

function stop() {
  if (!session || root.dataset.streamState !== "streaming") return;
  session.cancel();
  stopClocks();
  for (const s of Object.values(sides)) if (s.stoppedAt == null) setText(s.status, "Stopped.");
  setStreamState("stopped");
}

function onMeta(meta) {
  timeline.reset({ baseLevel: meta.base_level, totalBytes: meta.total_bytes, schedule: meta.schedule });
  form.setMaxGenerativeLevels(meta.base_level);
  stats.set("link", linkText(meta));
  setText(sides.hidenet.status, `Waiting for the base level · ${formatBytes(meta.total_bytes)} to send`);
  setText(sides.jpeg.status, "Waiting for the first scan");
  setStreamState("streaming");
}

function onLevel(message, bitmap) {
  const s = sides.hidenet;
  const step = message.index + 1;
  s.stage.show(bitmap, `hideNet: ${image.name}, level ${message.level}, ${formatSize(message.width, message.height)}`);
  s.figure.dataset.level = String(message.level);
  s.last = message;
  setText(s.badge, `${step}/${message.levels}`);
  setText(s.status, `Level ${message.level} · ${formatSize(message.width, message.height)} · ${formatBytes(message.total_bytes)} at ${formatClock(message.arrival_ms)}`);
  timeline.addLevel(message);
  record("hidenet", "", message, message.total_bytes);
  stats.set("psnr", formatPsnr(message.psnr));
  if (step === message.levels) {
    s.stoppedAt = message.arrival_ms;
    stats.set("final", formatMs(message.arrival_ms));
  }
}

/** Plot one side's frame (`key`: "hidenet" or "jpeg") and update its totals (stats named `prefix` + name). */
function record(key, prefix, message, bytes) {
  charts[0].add(key, message.arrival_ms, message.psnr);
  charts[1].add(key, bytes, message.psnr);
  if (stream.first[key] == null) {
    stream.first[key] = message.arrival_ms;
    stats.set(`${prefix}first`, formatMs(message.arrival_ms));
  }
  stats.set(`${prefix}bytes`, formatBytes(bytes));
}

function onRace(message, bitmap) {
  const s = sides.jpeg;
  s.last = message;
  const scan = message.scan;
  s.figure.dataset.scans = String(scan);
  const of = `/${message.scans}`;
  s.stage.show(bitmap, `Progressive JPEG: ${image.name}, scan ${scan}${of}`);
  setText(s.badge, `scan ${scan}${of}`);
  setText(s.status, `Scan ${scan}${of} · ${formatBytes(message.bytes)} at ${formatClock(message.arrival_ms)} · ${formatPsnr(message.psnr)}`);
  record("jpeg", "jpeg-", message, message.bytes);
  stats.set("jpeg-final", formatMs(message.arrival_ms));
  if (scan === message.scans) s.stoppedAt = message.arrival_ms;
}

function onDone(message) {
  timeline.finish();
  const h = sides.hidenet;
  if (h.last) {
    h.stoppedAt ??= h.last.arrival_ms;
    stats.set("final", formatMs(h.stoppedAt));
    setText(h.status, `Done · ${formatBytes(h.last.total_bytes)} in ${formatClock(h.stoppedAt)} · ${formatPsnr(h.last.psnr)}`);
  }
  const j = sides.jpeg;
  if (state.race && j.last) {
    j.stoppedAt = j.last.arrival_ms;
    setText(j.status, `Done · ${formatBytes(j.last.bytes)} in ${formatClock(j.stoppedAt)} · ${formatPsnr(j.last.psnr)}`);
  }
  stopClocks();
  void message;
  setStreamState("done");
}

/** Each side's clock runs from the start until its final frame arrives. */
function tickClocks() {
  cancelAnimationFrame(clockFrame);
  let lastPaint = 0;
  const tick = (now) => {
    const elapsed = now - stream.t0;
    for (const s of Object.values(sides)) setText(s.clock, formatClock(s.stoppedAt ?? elapsed));
    if (now - lastPaint > 100) {
      charts[0].setNow(elapsed);
      lastPaint = now;
    }
    clockFrame = requestAnimationFrame(tick);
  };
  clockFrame = requestAnimationFrame(tick);
}

function stopClocks() {
  cancelAnimationFrame(clockFrame);
  for (const s of Object.values(sides)) {
    s.stoppedAt ??= s.last ? s.last.arrival_ms : null;
    if (s.stoppedAt != null) setText(s.clock, formatClock(s.stoppedAt));
  }
  const ends = Object.values(sides).map((s) => s.stoppedAt).filter((v) => v != null);
  charts[0].setNow(ends.length ? Math.max(...ends) : null);
}

bindShortcuts({
  r: () => start(),
  s: () => stop(),
  f: () => form.toggle("view", state.view === "fit" ? "1to1" : "fit"),
  j: () => form.toggle("race", !state.race),
});
$("#stop").addEventListener("click", stop);
window.addEventListener("pagehide", () => session?.close());

form.set(state);
apply(state);
start();
