// A small live line chart of PSNR against time or bytes, one step line per racer.
// Colours come from CSS custom properties on the canvas (--series-<key>, --chart-*).

import { formatBytes } from "./format.js";

/** Exact (lossless) pictures have infinite PSNR; they are drawn on a band above the top tick. */
const EXACT = Infinity;

export class QualityChart {
  /** axis: "time" (x = ms) or "bytes" (x = bytes received); series: the racers' keys, drawn in this order. */
  constructor(canvas, { axis, series = ["hidenet"] }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.axis = axis;
    this.now = null;
    this.pending = false;
    this.setSeries(series);
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#resize();
  }

  /** The racers to draw (their keys name the CSS colours): clears every point. */
  setSeries(series) {
    for (const key of Object.keys(this.canvas.dataset)) if (key.startsWith("points")) delete this.canvas.dataset[key];
    this.names = [...series];
    this.series = new Map(this.names.map((name) => [name, []]));
    this.now = null;
    this.redraw();
  }

  reset() {
    this.setSeries(this.names);
  }

  /** Add a point; psnr null means exact. */
  add(name, x, psnr) {
    const points = this.series.get(name);
    if (!points) return;
    points.push({ x, y: psnr == null ? EXACT : psnr });
    this.canvas.dataset[`points${name[0].toUpperCase()}${name.slice(1)}`] = String(points.length);
    this.redraw();
  }

  /** On the time chart, extend the lines to the running clock (ms), or stop with null. */
  setNow(ms) {
    this.now = ms;
    this.redraw();
  }

  /** Redraw on the next animation frame (many updates collapse into one paint). */
  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.#paint();
    });
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    this.canvas.height = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    this.#paint();
  }

  #paint() {
    const { ctx, canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    const style = getComputedStyle(canvas);
    const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    const W = canvas.width / dpr;
    const H = canvas.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);

    const all = [...this.series.values()].flat();
    const finite = all.map((p) => p.y).filter(Number.isFinite);
    const hasExact = all.some((p) => p.y === EXACT);
    let yMin = finite.length ? Math.floor((Math.min(...finite) - 2) / 5) * 5 : 10;
    let yMax = finite.length ? Math.ceil((Math.max(...finite) + 2) / 5) * 5 : 50;
    yMin = Math.max(0, Math.min(yMin, yMax - 10));
    if (yMax - yMin < 10) yMax = yMin + 10;
    let xMax = Math.max(...all.map((p) => p.x), 0);
    if (this.axis === "time" && this.now != null) xMax = Math.max(xMax, this.now);
    xMax = Math.max(xMax, this.axis === "time" ? 10 : 100); // at least 10 ms or 100 bytes: never a 0-wide axis
    const xStep = niceStep((xMax * 1.05) / 4);
    xMax = Math.ceil((xMax * 1.05) / xStep) * xStep;

    const pad = { left: 40, right: 12, top: hasExact ? 26 : 12, bottom: 24 };
    const plotW = Math.max(10, W - pad.left - pad.right);
    const plotH = Math.max(10, H - pad.top - pad.bottom);
    const sx = (x) => pad.left + (x / xMax) * plotW;
    const sy = (y) => (y === EXACT ? pad.top - 14 : pad.top + (1 - (y - yMin) / (yMax - yMin)) * plotH);

    // Grid and labels.
    ctx.font = `11px ${style.fontFamily}`;
    ctx.lineWidth = 1;
    ctx.strokeStyle = color("--chart-grid", "rgba(255,255,255,.08)");
    ctx.fillStyle = color("--chart-label", "#8b93a7");
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let y = yMin; y <= yMax; y += yMax - yMin > 30 ? 10 : 5) {
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(sy(y)) + 0.5);
      ctx.lineTo(pad.left + plotW, Math.round(sy(y)) + 0.5);
      ctx.stroke();
      ctx.fillText(String(y), pad.left - 6, sy(y));
    }
    if (hasExact) ctx.fillText("∞", pad.left - 6, sy(EXACT));
    ctx.textBaseline = "top";
    const labels = [];
    for (let i = 0; i * xStep <= xMax + 1e-9; i += 1) {
      const x = i * xStep;
      const last = x + xStep > xMax + 1e-9;
      ctx.textAlign = last ? "right" : "center"; // the last label stays inside
      labels.push(this.#xLabel(x, xStep));
      ctx.fillText(labels.at(-1), last ? pad.left + plotW : sx(x), pad.top + plotH + 6);
    }
    canvas.dataset.xLabels = labels.join("|"); // what the axis reads, for tests and screen readers' sake

    // Series as step lines: the quality shown holds until the next picture arrives.
    for (const name of this.names) {
      const points = this.series.get(name);
      if (!points.length) continue;
      const stroke = color(`--series-${name}`, "#fff");
      ctx.strokeStyle = stroke;
      ctx.fillStyle = stroke;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((p, i) => {
        if (i === 0) ctx.moveTo(sx(p.x), sy(p.y));
        else {
          ctx.lineTo(sx(p.x), sy(points[i - 1].y));
          ctx.lineTo(sx(p.x), sy(p.y));
        }
      });
      const last = points[points.length - 1];
      if (this.axis === "time" && this.now != null && this.now > last.x) ctx.lineTo(sx(this.now), sy(last.y));
      ctx.stroke();
      for (const p of points) {
        ctx.beginPath();
        ctx.arc(sx(p.x), sy(p.y), 3, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }

  #xLabel(x, step) {
    if (x === 0) return "0";
    if (this.axis === "bytes") return formatBytes(x);
    if (step < 100) return `${Math.round(x)} ms`; // short races (the unlimited link): milliseconds
    const decimals = step >= 1000 ? 0 : 1;
    return `${(x / 1000).toFixed(decimals)} s`;
  }
}

/** The smallest of 1, 2, 5 times a power of ten that is at least `value`. */
function niceStep(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1e-9)));
  for (const m of [1, 2, 5]) if (value <= m * power) return m * power;
  return 10 * power;
}
