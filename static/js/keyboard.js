// Single-key shortcuts for the viewer, ignored while typing in a form field.

const TYPING = new Set(["INPUT", "SELECT", "TEXTAREA"]);

/** bindings: {"r": () => ..., "f": () => ...}; keys are matched case-insensitively. */
export function bindShortcuts(bindings, target = document) {
  target.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const node = event.target;
    if (TYPING.has(node.tagName) && node.type !== "radio" && node.type !== "checkbox") return;
    if (node.isContentEditable) return;
    const action = bindings[event.key.toLowerCase()];
    if (!action) return;
    event.preventDefault();
    action();
  });
}
