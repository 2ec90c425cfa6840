// editor.ts — the objects pane: a YAML textarea with a line-number gutter, the control plane's
// issues listed under it (file line, object, field, message) with their lines marked in the
// gutter, a click on an issue selecting its line. A generated scene (20k Services) is shown as a
// read-only summary. Knows nothing about the worker: the page passes text in and issues back.
import type { ManifestIssue } from '../../../host-node/kube/index.js';
import { byId, fill, h } from './dom.js';

export class Editor {
  private readonly text = byId<HTMLTextAreaElement>('yaml');
  private readonly gutter = byId('gutter');
  private readonly issues = byId('issues');
  private bad = new Set<number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** Called (debounced) when the user changes the text. */
  onEdit: (yaml: string) => void = () => {};

  constructor() {
    this.text.addEventListener('input', () => {
      this.renderGutter();
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.onEdit(this.text.value), 450);
    });
    this.text.addEventListener('scroll', () => { this.gutter.scrollTop = this.text.scrollTop; });
    this.text.addEventListener('keydown', (e) => {
      if (e.key === 'Tab') {   // two spaces, as YAML wants
        e.preventDefault();
        this.text.setRangeText('  ', this.text.selectionStart, this.text.selectionEnd, 'end');
        this.text.dispatchEvent(new Event('input'));
      }
    });
  }

  get value(): string {
    return this.text.value;
  }

  get readOnly(): boolean {
    return this.text.readOnly;
  }

  /** Shows text to edit. */
  setText(yaml: string): void {
    this.text.readOnly = false;
    this.text.value = yaml;
    this.bad.clear();
    this.renderGutter();
  }

  /** Shows a generated scene's summary, not editable. */
  setSummary(summary: string): void {
    this.text.readOnly = true;
    this.text.value = summary;
    this.bad.clear();
    this.renderGutter();
  }

  showIssues(list: ManifestIssue[]): void {
    this.bad = new Set(list.map((i) => i.line).filter((l): l is number => l !== undefined));
    this.renderGutter();
    if (list.length === 0) {
      fill(this.issues, h('p', { class: 'ok' }, 'All objects valid.'));
      return;
    }
    fill(this.issues, h('ul', {}, ...list.map((i) => h('li', {
      class: 'issue',
      onclick: () => i.line !== undefined && this.selectLine(i.line),
      title: 'Show the line',
    },
    h('span', { class: 'issue-line' }, i.line !== undefined ? `line ${i.line}` : 'document'),
    ' ', i.object ? h('b', {}, i.object) : null, i.path ? h('code', {}, i.path) : null, ' ', i.message))));
  }

  /** Selects line n (1-based) and scrolls it into view. */
  selectLine(n: number): void {
    const lines = this.text.value.split('\n');
    let start = 0;
    for (let i = 0; i < n - 1 && i < lines.length; i++) start += lines[i]!.length + 1;
    this.text.focus();
    this.text.setSelectionRange(start, start + (lines[n - 1]?.length ?? 0));
    const lineH = parseFloat(getComputedStyle(this.text).lineHeight) || 18;
    this.text.scrollTop = Math.max(0, (n - 4) * lineH);
  }

  private renderGutter(): void {
    const n = this.text.value.split('\n').length;
    const parts: string[] = [];
    for (let i = 1; i <= n; i++) parts.push(this.bad.has(i) ? `<span class="bad">${i}</span>` : String(i));
    this.gutter.innerHTML = parts.join('\n');
    this.gutter.scrollTop = this.text.scrollTop;
  }
}
