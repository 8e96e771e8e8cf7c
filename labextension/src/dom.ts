/** A small DOM builder for the panel (plain DOM, no framework). */

export type Child = Node | string | null | undefined | false;

/** `el('td', {class: 'x'}, 'text', child)`: a small DOM builder. */
export function el(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

/** A hex value cut to `chars`, full on hover. */
export function short(hex: string, chars = 12): HTMLElement {
  return el('code', { title: hex, class: 'jp-WasmSandbox-hash' }, `${hex.slice(0, chars)}…`);
}
