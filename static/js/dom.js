// Small DOM helpers. Text always goes in through textContent, never innerHTML.

/** The element matching `selector` under `root`; throws if it is missing (a template bug). */
export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`missing element ${selector}`);
  return node;
}

/** All elements matching `selector` under `root`, as an array. */
export function $$(selector, root = document) {
  return Array.from(root.querySelectorAll(selector));
}

/** Set a node's text, treating null and undefined as empty. */
export function setText(node, text) {
  node.textContent = text == null ? "" : String(text);
}

/**
 * Create an element: `el("td", {className: "num", dataset: {level: 3}}, "12 KB")`.
 * String children become text nodes, so data can never be parsed as markup.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) node.setAttribute(name, v);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show or hide an element with the `hidden` attribute. */
export function show(node, visible) {
  node.hidden = !visible;
}

/** True when the user asked the system for less motion. */
export function prefersReducedMotion() {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}
