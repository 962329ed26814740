// The viewer's state in the URL query, so a demo can be shared and reloaded.
//
//   ?link=3g&mode=near&max_error=2&preview=1&race=pjpeg:90,png&view=1to1
//   ?link=custom&down_kbps=800&rtt_ms=150&mode=generative&generative_levels=2&stream=resolution
//
// The image is the path (/view/<id>). Unknown or out-of-range values fall back to defaults;
// the ranges are the server's (ControlsForm.limits(), ControlsForm.contenders()). `race` lists
// the contenders by key ("pjpeg:90"); race=1 is the progressive JPEG at quality 90, race=0 none.

export const MODES = ["lossless", "near", "generative"];
export const VIEWS = ["fit", "1to1"];
/** Quality layers (the default) or the resolution-only stream (one pass over the levels). */
export const STREAMS = ["layered", "resolution"];

export const DEFAULTS = Object.freeze({
  link: "3g",
  down_kbps: 1000,
  rtt_ms: 100,
  mode: "lossless",
  max_error: 2,
  generative_levels: 1,
  stream: "layered",
  preview: true,
  race: [],
  view: "fit",
});

/** What race=1 means: the progressive JPEG at its default quality. */
export const RACE_DEFAULT = "pjpeg";
/** Contenders beside hideNet, at most. */
export const MAX_CONTENDERS = 3;

/**
 * The canonical key of a contender ("pjpeg" -> "pjpeg:90", "png" -> "png"), or null if `text` names none
 * of `contenders` ([{id, quality: {default, min, max} | null}]) or its quality is out of range.
 */
export function contenderKey(text, contenders) {
  const [id, quality, ...rest] = String(text).split(":");
  const c = contenders.find((x) => x.id === id);
  if (!c || rest.length) return null;
  if (!c.quality) return quality === undefined ? id : null;
  if (quality === undefined) return `${id}:${c.quality.default}`;
  const q = intIn(quality, [c.quality.min, c.quality.max], null);
  return q == null ? null : `${id}:${q}`;
}

/** The race from a URL value: "1" (the default contender), "0" (none) or a comma list of keys. */
export function parseRace(text, contenders) {
  if (text == null || text === "") return [];
  const on = flag(text, null);
  if (on === false) return [];
  const items = on === true ? [RACE_DEFAULT] : text.split(",");
  const keys = [];
  for (const item of items) {
    const key = contenderKey(item.trim(), contenders);
    if (key && !keys.includes(key) && keys.length < MAX_CONTENDERS) keys.push(key);
  }
  return keys;
}

function intIn(text, [min, max], fallback) {
  if (text == null || text === "" || !/^-?\d+$/.test(text)) return fallback;
  const value = Number(text);
  return value >= min && value <= max ? value : fallback;
}

function flag(text, fallback) {
  if (text === "1" || text === "true" || text === "on") return true;
  if (text === "0" || text === "false" || text === "off") return false;
  return fallback;
}

/**
 * Parse a query string into a full state; `linkIds` are the server's preset ids, `limits` the
 * [min, max] of each number setting, `contenders` those the server offers.
 */
export function parseState(search, linkIds, limits, contenders = []) {
  const q = new URLSearchParams(search);
  const fallbackLink = linkIds.includes(DEFAULTS.link) ? DEFAULTS.link : linkIds[0] ?? "custom";
  const link = q.get("link");
  return {
    link: link === "custom" || linkIds.includes(link) ? link : fallbackLink,
    down_kbps: intIn(q.get("down_kbps"), limits.down_kbps, DEFAULTS.down_kbps),
    rtt_ms: intIn(q.get("rtt_ms"), limits.rtt_ms, DEFAULTS.rtt_ms),
    mode: MODES.includes(q.get("mode")) ? q.get("mode") : DEFAULTS.mode,
    max_error: intIn(q.get("max_error"), limits.max_error, DEFAULTS.max_error),
    generative_levels: intIn(q.get("generative_levels"), limits.generative_levels, DEFAULTS.generative_levels),
    stream: STREAMS.includes(q.get("stream")) ? q.get("stream") : DEFAULTS.stream,
    preview: flag(q.get("preview"), DEFAULTS.preview),
    race: parseRace(q.get("race"), contenders),
    view: VIEWS.includes(q.get("view")) ? q.get("view") : DEFAULTS.view,
  };
}

/** The query string for a state: only the parameters that matter for it. */
export function formatState(state) {
  const q = new URLSearchParams();
  q.set("link", state.link);
  if (state.link === "custom") {
    q.set("down_kbps", String(state.down_kbps));
    q.set("rtt_ms", String(state.rtt_ms));
  }
  q.set("mode", state.mode);
  if (state.mode === "near") q.set("max_error", String(state.max_error));
  if (state.mode === "generative") q.set("generative_levels", String(state.generative_levels));
  if (state.stream !== DEFAULTS.stream) q.set("stream", state.stream);
  q.set("preview", state.preview ? "1" : "0");
  q.set("race", state.race.length ? state.race.join(",") : "0");
  q.set("view", state.view);
  return `?${q}`.replace(/%3A/gi, ":").replace(/%2C/gi, ","); // race=pjpeg:90,png reads as it is
}

/** Replace the current history entry's query with the state's (no reload, no new entry). */
export function saveState(state) {
  const query = formatState(state);
  if (query !== window.location.search) {
    window.history.replaceState(null, "", `${window.location.pathname}${query}${window.location.hash}`);
  }
}
