// objects-form.ts — the small form beside the YAML: pick a Service (or add one), then its type,
// session affinity, internal/external traffic policy, ports, and its endpoints with their node and
// ready / serving / terminating conditions. The form is drawn from the text (objects-model.ts
// readFormModel) and every change goes back into the same text (applyFormEdit), which the page
// then loads like a typed edit; typing in the YAML redraws the form. Never talks to the worker.
import { formEdit, readFormModel, NODES, type Condition, type FormEdit, type FormModel, type FormService, type PortField } from './objects-model.js';
import { byId, fill, h } from './views.js';

const CONDITIONS: readonly Condition[] = ['ready', 'serving', 'terminating'];

/** A model as text without its endpoints' conditions: equal for two models that differ in those alone. */
const shapeOf = (m: FormModel): string => JSON.stringify(m, (k, v: unknown) => (CONDITIONS.includes(k as Condition) ? undefined : v));

export class ObjectsForm {
  private readonly root = byId('objects-form');
  private yaml = '';
  private selected = '';
  /** The model the form shows (null: none, or the text's error). */
  private drawn: FormModel | null = null;
  private rehearsals = 0;

  /**
   * Called with the edited text after every change made in the form, and `redraw`, which draws the
   * form for that text (unless it was drawn at once): the page calls it when it draws the edit's
   * answer, so the form, the rules and the trace change in one update (one layout), and the edit
   * reaches the worker first. `objects` are the text's objects when the edit could give them
   * without parsing the text again.
   */
  onEdit: (yaml: string, redraw: () => void, objects?: unknown[]) => void = (_yaml, redraw) => redraw();

  /** Draws the form for this text (the selected Service kept when it still exists, or `select`). */
  show(yaml: string, select?: string): void {
    this.yaml = yaml;
    if (select) this.selected = select;
    this.render(readFormModel(yaml));
  }

  private edit(e: FormEdit): void {
    const { yaml: next, model, objects } = formEdit(this.yaml, e);
    if (next === this.yaml) return;
    if (e.op === 'add-service') {
      const before = new Set(readFormModel(this.yaml).services.map((s) => s.key));
      this.selected = readFormModel(next).services.find((s) => !before.has(s.key))?.key ?? this.selected;
    }
    this.yaml = next;
    // An edit that moves no row comes with its model: the form is drawn with the answer. Any other
    // is drawn at once, since a row left showing the old text would carry an index that no longer
    // names the same endpoint or port.
    if (!model) {
      this.render(readFormModel(next));
      this.onEdit(next, () => {});
      return;
    }
    this.onEdit(next, () => {
      if (this.yaml === next) this.redraw(model);
    }, objects);
  }

  /**
   * Runs the form's commonest edit (a pod's ready condition, toggled each time) on the current
   * text and drops the result: run a few times while the page is idle, the yaml library's code
   * the first edits of a scene need is compiled and optimized before the user clicks. Pure:
   * nothing shown or sent changes.
   */
  rehearse(): void {
    const svc = this.drawn?.services.find((s) => s.endpoints.length > 0);
    const ep = svc?.endpoints[0];
    if (!svc || !ep) return;
    this.rehearsals++;
    formEdit(this.yaml, { op: 'condition', service: svc.key, slice: ep.slice, index: ep.index, condition: 'ready', value: this.rehearsals % 2 === 1 ? !ep.ready : ep.ready });
  }

  /**
   * Draws `m`; when it differs from the form shown in endpoint conditions alone (a ready, serving
   * or terminating box toggled), only those boxes are set: the rows stay, and so does the focus
   * of the box the user just clicked (replacing the form would drop it and make the browser lay
   * the page out at once).
   */
  private redraw(m: FormModel): void {
    const rows = this.drawn !== null && shapeOf(this.drawn) === shapeOf(m)
      ? this.root.querySelectorAll<HTMLTableRowElement>('.fm-endpoints tbody tr') : null;
    const svc = m.services.find((x) => x.key === this.selected);
    if (!rows || !svc || rows.length !== svc.endpoints.length) {
      this.render(m);
      return;
    }
    svc.endpoints.forEach((e, i) => {
      for (const c of CONDITIONS) rows[i]!.querySelector<HTMLInputElement>(`.fm-${c}`)!.checked = e[c];
    });
    this.drawn = m;
  }

  private render(m: FormModel): void {
    this.drawn = m.error ? null : m;
    if (m.error) {
      fill(this.root, h('p', { class: 'muted small', id: 'fm-error' }, `The form waits for valid YAML: ${m.error}`));
      return;
    }
    if (!m.services.some((s) => s.key === this.selected)) this.selected = m.services[0]?.key ?? '';
    const svc = m.services.find((s) => s.key === this.selected);
    const pick = h('select', { id: 'fm-service', 'aria-label': 'Service to edit', onchange: (ev: Event) => {
      this.selected = (ev.target as HTMLSelectElement).value;
      this.render(readFormModel(this.yaml));
    } }, ...m.services.map((s) => h('option', { value: s.key, selected: s.key === this.selected }, s.key)));
    fill(this.root,
      h('div', { class: 'fm-row' },
        m.services.length ? pick : h('span', { class: 'muted' }, 'No Service yet.'),
        h('button', { type: 'button', id: 'fm-add-service', onclick: () => this.edit({ op: 'add-service' }) }, '+ Service'),
        svc ? h('button', { type: 'button', id: 'fm-remove-service', title: 'Remove this Service and its EndpointSlices',
          onclick: () => this.edit({ op: 'remove-service', service: svc.key }) }, 'Remove') : null),
      svc ? this.service(svc) : null);
  }

  private choice(id: string, label: string, value: string, options: string[], change: (v: string) => void, disabled = false): HTMLLabelElement {
    return h('label', {}, label, h('select', { id, disabled, onchange: (ev: Event) => change((ev.target as HTMLSelectElement).value) },
      ...options.map((o) => h('option', { value: o, selected: o === value }, o))));
  }

  private service(s: FormService): HTMLElement {
    const set = (field: Extract<FormEdit, { op: 'set' }>['field']) => (value: string | number) => this.edit({ op: 'set', service: s.key, field, value });
    const external = s.type !== 'ClusterIP';
    const spec = h('div', { class: 'fm-grid' },
      this.choice('fm-type', 'Type', s.type, ['ClusterIP', 'NodePort', 'LoadBalancer'], set('type')),
      this.choice('fm-affinity', 'Session affinity', s.sessionAffinity, ['None', 'ClientIP'], set('sessionAffinity')),
      h('label', {}, 'Affinity timeout (s)', h('input', {
        id: 'fm-affinity-timeout', type: 'number', min: 1, max: 86400, value: s.affinitySeconds, disabled: s.sessionAffinity !== 'ClientIP',
        onchange: (ev: Event) => set('affinitySeconds')(Number((ev.target as HTMLInputElement).value)),
      })),
      this.choice('fm-itp', 'Internal traffic', s.internalTrafficPolicy, ['Cluster', 'Local'], set('internalTrafficPolicy')),
      this.choice('fm-etp', 'External traffic', s.externalTrafficPolicy, ['Cluster', 'Local'], set('externalTrafficPolicy'), !external));
    const portInput = (i: number, field: PortField, value: string | number, attrs: Record<string, string | number | boolean> = {}) =>
      h('input', { class: `fm-port-${field}`, value, size: 6, ...attrs, onchange: (ev: Event) => this.edit({ op: 'port', service: s.key, index: i, field, value: (ev.target as HTMLInputElement).value }) });
    const ports = h('table', { class: 'table small fm-ports' },
      h('thead', {}, h('tr', {}, ...['name', 'port', 'target', 'protocol', 'node port'].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...s.ports.map((p) => h('tr', {},
        h('td', {}, portInput(p.index, 'name', p.name)),
        h('td', {}, portInput(p.index, 'port', p.port, { type: 'number', min: 1, max: 65535 })),
        h('td', {}, portInput(p.index, 'targetPort', p.targetPort)),
        h('td', {}, h('select', { class: 'fm-port-protocol', onchange: (ev: Event) => this.edit({ op: 'port', service: s.key, index: p.index, field: 'protocol', value: (ev.target as HTMLSelectElement).value }) },
          ...['TCP', 'UDP', 'SCTP'].map((o) => h('option', { value: o, selected: o === p.protocol }, o)))),
        h('td', {}, portInput(p.index, 'nodePort', p.nodePort || '', { type: 'number', min: 30000, max: 32767, disabled: !external }))))));
    const cond = (e: FormService['endpoints'][number], c: Condition) => h('input', {
      type: 'checkbox', class: `fm-${c}`, checked: e[c], title: c,
      onchange: (ev: Event) => this.edit({ op: 'condition', service: s.key, slice: e.slice, index: e.index, condition: c, value: (ev.target as HTMLInputElement).checked }),
    });
    const endpoints = h('table', { class: 'table small fm-endpoints' },
      h('thead', {}, h('tr', {}, ...['pod', 'node', 'ready', 'serving', 'terminating', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, ...s.endpoints.map((e) => h('tr', { 'data-address': e.address },
        h('td', { class: 'mono' }, e.address),
        h('td', {}, h('select', { class: 'fm-node', onchange: (ev: Event) => this.edit({ op: 'endpoint-node', service: s.key, slice: e.slice, index: e.index, value: (ev.target as HTMLSelectElement).value }) },
          ...[...new Set([...NODES, e.node])].map((n) => h('option', { value: n, selected: n === e.node }, n)))),
        h('td', {}, cond(e, 'ready')), h('td', {}, cond(e, 'serving')), h('td', {}, cond(e, 'terminating')),
        h('td', {}, h('button', { type: 'button', class: 'fm-remove-endpoint', title: 'Remove this endpoint',
          onclick: () => this.edit({ op: 'remove-endpoint', service: s.key, slice: e.slice, index: e.index }) }, '×'))))));
    return h('div', { class: 'fm-service', 'data-service': s.key },
      spec,
      h('div', { class: 'fm-row' }, h('b', {}, 'Ports'), h('button', { type: 'button', id: 'fm-add-port', onclick: () => this.edit({ op: 'add-port', service: s.key }) }, '+ port')),
      ports,
      h('div', { class: 'fm-row' }, h('b', {}, `Endpoints (${s.endpoints.length})`), h('button', { type: 'button', id: 'fm-add-endpoint', onclick: () => this.edit({ op: 'add-endpoint', service: s.key }) }, '+ endpoint')),
      endpoints,
      h('p', { class: 'muted small' }, 'Conditions stay as the EndpointSlice controller writes them: ready means serving and not terminating.'));
  }
}
