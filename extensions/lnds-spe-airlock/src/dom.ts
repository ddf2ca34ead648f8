/** A tiny element builder for the panels (JupyterLab classes and CSS variables, no framework). */

type Child = Node | string | null | undefined | false;

export function h(
  tag: string,
  attrs: { [name: string]: string | boolean | undefined | ((event: Event) => void) } = {},
  ...children: (Child | Child[])[]
): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      element.addEventListener(name.replace(/^on/, ''), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

/** A JupyterLab-styled button. */
export function button(
  label: string,
  onclick: () => void,
  attrs: { [name: string]: string | boolean | undefined } = {},
  accept = false
): HTMLElement {
  const cls = `jp-Button jp-mod-styled ${accept ? 'jp-mod-accept' : 'jp-mod-reject'} lnds-airlock-button`;
  const extra = typeof attrs.class === 'string' ? ` ${attrs.class}` : '';
  return h('button', { type: 'button', ...attrs, class: cls + extra, onclick: () => onclick() }, label);
}
