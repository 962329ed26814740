// The viewer page: wires the settings, the websocket stream, the stages, the timeline,
// the totals, the verdict and the charts together. Each part lives in its own module.
//
// Two clocks, each labelled where it is shown: *link time*, the simulated link's clock,
// which starts when the server starts the stream (meta) and is what the chart, the level
// times and the verdict use; and *real time*, the wall clock since Replay, which also
// counts the server's preparation (encoding a stream not cached yet) and its decoding.
//
// Frames come at the size hideNet's stage shows them (``frame`` in start), every racer's in a
// race too (the server still measures each racer's PSNR on its full-size picture); a race
// at 1:1 asks for full-size frames, so that every racer shows its own pixels (switching a
// race to 1:1 starts it again). At
// 1:1, while hideNet's frame is smaller than what it shows, the viewer asks the server for
// the exact pixels of the visible rectangle (``region``) after each chunk and after each pan.

import { $, setText, show } from "./dom.js";
import { formatBytes, formatClock, formatMs, formatPsnr, formatRate, formatSize, NBSP } from "./format.js";
import { StreamSession, startMessage } from "./protocol.js";
import { Timeline } from "./timeline.js";
import { QualityChart } from "./chart.js";
import { Stats } from "./stats.js";
import { RaceStages } from "./racers.js";
import { VerdictTable } from "./verdict.js";
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

const stages = new RaceStages($("#stages"), $("#stage-template"), image);
const timeline = new Timeline($("#timeline-head"), $("#timeline-body"), $("#bytes-fill"));
const stats = new Stats($("#stats"));
const verdict = new VerdictTable($("#verdict-body"), $("#verdict-sentence"), $("#verdict-note"));
const charts = [
  new QualityChart($("#chart-time"), { axis: "time" }),
  new QualityChart($("#chart-bytes"), { axis: "bytes" }),
];
const legend = $("#legend");
const timeCaption = $("#chart-time-caption");
const errorBanner = $("#stream-error");

const form = new ControlsForm($("#controls"), {
  onChange(next, restart) {
    // a race at display size switched to 1:1 starts again at full size: its contenders have no regions
    const fullRace = next.view === "1to1" && next.race.length > 0 && raceShrunk();
    apply(next);
    if (restart || fullRace) start();
  },
  onReplay(next) {
    apply(next);
    start();
  },
});
const offered = form.contenders();

let state = parseState(window.location.search, form.linkIds(), form.limits(), offered);
let session = null;
// Per-stream bookkeeping: real t0 (Replay), link t0 (meta), the race's clock ("arrival" or "sent").
let stream = null;
let clockFrame = 0;
let regionTimer = 0;
let regionPending = false; // a region request is scheduled (regionTimer) and not sent yet
// A start the server refused as "busy" is asked again, a few times, each wait longer (docs/protocol.md).
const BUSY_RETRIES = 5;
const BUSY_BACKOFF = 1.5;
let busyTimer = 0;
let busyTries = 0; // busy refusals in a row of the stream being started

/** A contender's display name from its key: "pjpeg:90" -> "Progressive JPEG q90". */
function contenderLabel(key) {
  const [id, quality] = key.split(":");
  const name = offered.find((c) => c.id === id)?.name ?? id;
  return quality ? `${name} q${quality}` : name;
}

function apply(next) {
  state = next;
  saveState(state);
  const changed = stages.setContenders(state.race.map((key, i) => ({ key, label: contenderLabel(key), slot: i + 1 })));
  stages.setMode(state.view);
  $("#stages").classList.toggle("is-racing", state.race.length > 0);
  root.classList.toggle("is-wide-race", state.race.length >= 2);
  if (changed) {
    const series = stages.all().map((r) => r.series);
    for (const chart of charts) chart.setSeries(series);
    legend.replaceChildren(...stages.all().map((r) => {
      const item = document.createElement("li");
      item.className = `legend-item legend-${r.series}`;
      item.dataset.series = r.series;
      item.textContent = r.label;
      return item;
    }));
  }
  stats.set("link", linkText(null));
}

/** The link in words: from the stream's "meta" once it came, from the chosen preset until then. */
function linkText(meta) {
  if (state.link === "custom") return `${formatRate(state.down_kbps)}, ${state.rtt_ms}${NBSP}ms`;
  const option = form.inputs.link.selectedOptions[0];
  const link = meta?.link ?? {
    name: option?.textContent.split("·")[0].trim() ?? state.link,
    down_kbps: Number(option?.dataset.downKbps),
    rtt_ms: Number(option?.dataset.rttMs),
  };
  return link.down_kbps ? `${link.name} · ${formatRate(link.down_kbps)}, ${link.rtt_ms}${NBSP}ms` : link.name;
}

function setError(text) {
  setText(errorBanner, text ? `Stream error: ${text}` : "");
  show(errorBanner, Boolean(text));
}

function setStreamState(value) {
  root.dataset.streamState = value;
}

const realNow = () => (stream ? performance.now() - stream.realT0 : 0);
const linkNow = () => (stream?.linkT0 == null ? null : performance.now() - stream.linkT0);

/** Start (or restart) the stream with the current state: a new stream (``retry``: the same one, asked
 * again after the server was busy, which keeps the count of refusals). */
function start({ retry = false } = {}) {
  session?.close();
  clearTimeout(busyTimer);
  if (!retry) busyTries = 0;
  clearTimeout(regionTimer);
  regionPending = false;
  setError("");
  stream = { realT0: performance.now(), linkT0: null, time: "arrival", done: false };
  for (const r of stages.all()) r.reset("Connecting to the server…");
  timeline.reset({ schedule: [] });
  stats.reset();
  stats.set("link", linkText(null));
  verdict.reset(stages.all());
  for (const chart of charts) chart.reset();
  setStreamState("connecting");
  stream.frame = frameSize();
  session = new StreamSession(startMessage({ ...state, image: image.id, frame: stream.frame }), {
    onOpen() {
      for (const r of stages.all()) setText(r.status, "Waiting for the server…");
    },
    onProgress,
    onMeta,
    onLevel,
    onChunk,
    onRace,
    onRegion,
    onRegionBusy,
    onDone,
    onError(text, message) {
      if (message?.code === "busy" && !stream.done && busyTries < BUSY_RETRIES) {
        retryWhenFree(text, message.retry_ms ?? 3000);
        return;
      }
      setError(text);
      if (stream.done) return; // a region asked for after the end: the stream itself is complete
      stopClocks();
      setStreamState("error");
    },
  });
  tickClocks();
}

/**
 * The server is busy (every stream or encode slot taken, or this client's share): say so, with a
 * countdown, and ask again after its ``retry_ms``, each time half again as long (a crowd of refused
 * viewers does not come back all at once); Stop or any change ends the wait.
 */
function retryWhenFree(text, retryMs) {
  const wait = retryMs * BUSY_BACKOFF ** busyTries;
  busyTries += 1;
  const due = performance.now() + wait;
  stopClocks();
  setStreamState("waiting");
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((due - performance.now()) / 1000));
    const said = text.charAt(0).toUpperCase() + text.slice(1); // the server's words: "server busy: …"
    setText(errorBanner, `${said} · trying again in ${seconds}${NBSP}s (${busyTries} of ${BUSY_RETRIES})`);
    show(errorBanner, true);
    for (const r of stages.all()) setText(r.status, `Server busy: trying again in ${seconds}${NBSP}s…`);
    if (performance.now() >= due) {
      start({ retry: true });
      return;
    }
    busyTimer = setTimeout(tick, Math.min(1000, due - performance.now()));
  };
  tick();
}

/** Stop: cancel the stream, whatever it is doing (connecting, preparing, streaming, waiting for a busy
 * server); the clocks stay put. */
function stop() {
  if (root.dataset.streamState === "waiting") {
    clearTimeout(busyTimer);
    for (const r of stages.all()) setText(r.status, "Stopped while the server was busy");
    setStreamState("stopped");
    return;
  }
  if (!session || !["connecting", "preparing", "streaming"].includes(root.dataset.streamState)) return;
  session.cancel();
  stopClocks();
  for (const r of stages.all()) {
    if (r.finished) continue;
    r.flagText("Stopped");
    setText(r.status, `Stopped · ${r.status.textContent}`);
  }
  verdict.say("Stopped before the end: no verdict.");
  setStreamState("stopped");
}

/** Whether the race under way (or being prepared) sends its contenders' frames smaller than the image. */
function raceShrunk() {
  if (!stream || stream.frame === "full") return false;
  const contenders = stream.meta?.contenders;
  return contenders ? contenders.some((c) => c.frame != null) : true; // before meta: as asked
}

/**
 * The size frames are asked at: hideNet's stage's in device pixels (every stage of a race has
 * its size), or "full" for a race at 1:1, where each contender has no exact pixels but its frames.
 */
function frameSize() {
  // the canvas's box as laid out now (a race just turned on has shrunk it; its resize observer has not run yet)
  const canvas = stages.hidenet.stage.canvas;
  const dpr = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * dpr);
  const height = Math.round(canvas.clientHeight * dpr);
  if ((state.race.length && state.view === "1to1") || !width || !height) return "full";
  return { width, height };
}

/** The server says what it is doing: preparing the stream, or encoding a chunk that is not made yet. */
function onProgress(message) {
  const racer = stages.byKey(message.racer) ?? stages.hidenet;
  const steps = message.step != null && message.steps && !/chunk \d+ of/.test(message.message)
    ? ` (${message.step} of ${message.steps})` : "";
  setText(racer.status, `${message.message}${steps}…`);
  if (["connecting", "preparing"].includes(root.dataset.streamState)) setStreamState("preparing");
}

function onMeta(meta) {
  stream.linkT0 = performance.now();
  stream.time = meta.time ?? "arrival";
  stream.meta = meta;
  const clamp = stream.time === "arrival";
  stats.set("prepared", meta.prepared_ms == null ? "–" : formatMs(meta.prepared_ms));
  timeline.reset({ baseLevel: meta.base_level, totalBytes: meta.total_bytes, schedule: meta.schedule ?? [],
                   layers: meta.layers?.length ?? 1 });
  form.setMaxGenerativeLevels(meta.base_level);
  stats.set("link", linkText(meta));
  const unlimited = stream.time === "sent";
  setText(timeCaption, unlimited
    ? "against time: on the unlimited link every byte arrives at once, so this is when the server sent each picture"
    : "against time on the link");
  const label = unlimited ? "sent" : "link";
  const due = (schedule) => (clamp && schedule?.every((s) => s.arrival_ms != null) ? schedule.map((s) => s.arrival_ms) : null);
  stages.hidenet.start(due(meta.schedule), label);
  const total = meta.total_bytes ? ` · ${formatBytes(meta.total_bytes)} to send`
    : meta.encoding ? " · encoded as it is sent" : "";
  setText(stages.hidenet.status, `Waiting for the first level${total}`);
  for (const c of meta.contenders ?? []) {
    const racer = stages.bySlot(c.slot);
    if (!racer) continue;
    racer.start(due(c.schedule), label);
    setText(racer.status, `Waiting for the first repaint · ${formatBytes(c.file_bytes)} to send`);
  }
  if (!meta.preview && (meta.contenders ?? []).length) {
    verdict.setNote("Server preview is off: hideNet's PSNR is of each level at its own size, not of the full-size " +
      "picture like the contenders'. Turn the preview on for a fair race.");
  }
  setStreamState("streaming");
}

/** The time of a message on the race's clock: when its bytes arrived on the link (or were sent). */
function timeOf(message) {
  return stream.time === "sent" ? message.sent_ms : message.arrival_ms;
}

/** Plot a racer's picture and update its totals and its status line. */
function record(racer, message, bytes, final) {
  const t = timeOf(message);
  const lag = Math.max(0, (message.sent_ms ?? t) - (message.arrival_ms ?? t)); // the server's decoding, not the link
  charts[0].add(racer.series, t, message.psnr);
  charts[1].add(racer.series, bytes, message.psnr);
  verdict.event(racer.key, t, bytes, message.psnr);
  if (final) verdict.final(racer.key, t, message.psnr, bytes);
  return { t, real: realNow(), lag };
}

/** Where a picture came from, in words, with each time labelled by its clock. */
function when(t, real) {
  const clock = stream.time === "sent" ? "sent" : "arrived";
  return `${clock} ${formatClock(t)} (link) · shown ${formatClock(real)} (real)`;
}

/** A PSNR and, for a frame measured on a coarser grid than the full image, which one. */
function psnrText(message) {
  return formatPsnr(message.psnr) + (message.psnr_level ? ` at 1/${2 ** message.psnr_level} size` : "");
}

/** Where a chunk stands: its level and, in a layered stream, its layer and the error it leaves. */
function chunkText(message) {
  const layers = stream.meta?.layers?.length ?? 1;
  const layer = layers > 1 ? `Layer ${message.layer + 1} of ${layers} · level ${message.level}` : `Level ${message.level}`;
  const part = message.parts > 1 ? ` (part ${message.part + 1} of ${message.parts})` : "";
  const error = message.max_error == null ? "" : message.max_error === 0 ? " · exact" : ` · error ≤ ${message.max_error}`;
  return `${layer}${part}${error}`;
}

function onLevel(message, bitmap) {
  const r = stages.hidenet;
  const final = message.index + 1 === message.chunks;
  const { t, real, lag } = record(r, message, message.total_bytes, final);
  const size = formatSize(message.width, message.height);
  r.show(bitmap, t, lag, `level ${message.level}, ${size}`, final);
  r.figure.dataset.level = String(message.level);
  r.figure.dataset.layer = String(message.layer ?? 0);
  r.last = message;
  // a frame smaller than what it shows is shrunk: at 1:1 the exact pixels come as a region
  stream.shrunk = message.frame_width < (stream.meta.preview ? image.width : message.width);
  if (stream.shrunk) askRegion(0);
  else if (r.stage.region) r.stage.clearRegion();
  setText(r.badge, `${message.index + 1}/${message.chunks}`);
  setText(r.status, `${chunkText(message)} · ${size} · ${formatBytes(message.total_bytes)} ${when(t, real)} · ` +
    psnrText(message));
  timeline.add(message);
  stats.set("psnr", psnrText(message));
}

/**
 * A chunk that came while the server was still rendering an earlier frame: it has no frame of
 * its own, the frame of a later chunk (`superseded_by`, due by then) shows it. Its row fills in;
 * the picture stays as it is until that frame.
 */
function onChunk(message) {
  const r = stages.hidenet;
  setText(r.badge, `${message.index + 1}/${message.chunks}`);
  timeline.add(message);
}

/** At 1:1, ask for the exact pixels of what hideNet's stage shows, after `delay` ms (a pan sends many). */
function askRegion(delay) {
  clearTimeout(regionTimer);
  const canvas = stages.hidenet.stage.canvas;
  if (stream?.shrunk && state.view === "1to1") canvas.dataset.region = "stale";
  regionPending = true;
  regionTimer = setTimeout(() => {
    regionPending = false;
    const rect = stages.hidenet.stage.visibleRect();
    if (!rect || !stream?.shrunk || !session?.region(rect)) return;
    stream.regionAsked = rect;
    canvas.dataset.region = "asked";
  }, delay);
}

function onRegion(message, bitmap) {
  const stage = stages.hidenet.stage;
  stage.showRegion(bitmap, message.x, message.y);
  // "current": the exact pixels of what the stage shows now (of the latest chunk, where it was asked);
  // "predicted": the same rectangle, its finest levels predicted while the server decodes them.
  // The answer says which chunk's picture it is (`index`): an answer to an earlier request of the
  // same rectangle, served while the last chunks came, is not the picture shown now
  const asked = stream.regionAsked;
  const current = asked && ["x", "y", "width", "height"].every((k) => asked[k] === message[k]) &&
    message.index === stages.hidenet.last?.index;
  stage.canvas.dataset.region = !current ? "stale" : message.exact === false ? "predicted" : "current";
}

/** The server would not decode the region now (its region decodes are all taken): the stage keeps
 * what it shows, and asks again for what it then shows after the server's `retry_ms` (sooner if
 * a pan or a new chunk asks first), while at 1:1. */
function onRegionBusy(message) {
  const asked = stream?.regionAsked;
  if (!asked || !["x", "y", "width", "height"].every((k) => asked[k] === message[k])) return; // panned since
  if (state.view !== "1to1" || regionPending) return; // left 1:1, or a newer request is on its way
  askRegion(message.retry_ms ?? 2000);
  stages.hidenet.stage.canvas.dataset.region = "busy";
}

function onRace(message, bitmap) {
  const r = stages.bySlot(message.slot) ?? stages.byKey(message.contender);
  if (!r) return;
  const final = message.frame === message.frames;
  const { t, real, lag } = record(r, message, message.bytes, final);
  r.show(bitmap, t, lag, message.step, final);
  r.last = message;
  r.figure.dataset.frames = String(message.frame);
  setText(r.badge, `${message.frame}/${message.frames}`);
  const step = message.step.charAt(0).toUpperCase() + message.step.slice(1);
  setText(r.status, `${step} · ${formatBytes(message.bytes)} ${when(t, real)} · ${formatPsnr(message.psnr)}`);
}

function onDone(message) {
  timeline.finish();
  stream.done = true;
  for (const r of stages.all()) {
    if (!r.last) continue;
    r.finalAt ??= timeOf(r.last);
    const bytes = r.last.total_bytes ?? r.last.bytes;
    setText(r.status, `Done · ${formatBytes(bytes)} by ${formatClock(r.finalAt)} (link) · ${psnrText(r.last)}`);
  }
  if (message.verdict) verdict.done(message.verdict);
  const late = stages.all().filter((r) => r.lagMs > 100);
  if (late.length && stream.time === "arrival") {
    verdict.setNote(late.map((r) => `${r.label}'s pictures were shown up to ${formatMs(r.lagMs)} after their bytes ` +
      "arrived").join("; ") + ": the server was decoding them. The times above are when the bytes arrived.");
  }
  stopClocks();
  setStreamState("done");
}

/** Each racer's link clock, the totals' link and real clocks, and the chart's "now" line. */
function tickClocks() {
  cancelAnimationFrame(clockFrame);
  let lastPaint = 0;
  const tick = (now) => {
    const link = linkNow();
    for (const r of stages.all()) r.tick(link);
    stats.set("link-time", link == null ? "not started" : formatClock(link));
    stats.set("real-time", formatClock(realNow()));
    if (now - lastPaint > 100) {
      charts[0].setNow(stream.time === "sent" ? null : link);
      lastPaint = now;
    }
    clockFrame = requestAnimationFrame(tick);
  };
  clockFrame = requestAnimationFrame(tick);
}

/** Freeze every clock where it is now (a finished racer's stays at its final picture). */
function stopClocks() {
  cancelAnimationFrame(clockFrame);
  const link = linkNow();
  for (const r of stages.all()) r.freeze(link);
  const readings = stages.all().map((r) => r.reading(link)).filter((v) => v != null);
  const end = readings.length ? Math.max(...readings) : null;
  stats.set("link-time", end == null ? "not started" : formatClock(end));
  stats.set("real-time", formatClock(realNow()));
  charts[0].setNow(stream?.time === "sent" ? null : end);
}

bindShortcuts({
  r: () => start(),
  s: () => stop(),
  f: () => form.toggle("view", state.view === "fit" ? "1to1" : "fit"),
  j: () => form.toggle("race", !state.race.length),
});
$("#stop").addEventListener("click", stop);
stages.hidenet.stage.onView = () => askRegion(120);
window.addEventListener("pagehide", () => session?.close());

form.set(state);
apply(state);
start();
