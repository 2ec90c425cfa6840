// ipset/index.ts — the ipset text front end: IpsetTable (restore / command / save / list over the
// core), the parsers and renderers it is built from, and IpsetError. Platform-neutral.
export { IpsetTable, type IpsetTableOptions, type CommandResult, type ListOpts } from './table.js';
export { IpsetError, IPSET_VERSION, type IpsetErrorKind } from './errors.js';
export { tokenize, parseCommand, type Command, type CreateOpts, type GlobalOpts } from './command.js';
export { parseEntry, formatElement, type Element, type Entry } from './element.js';
export { Model, IpSet, type Member, type Sink, type RefCounter } from './model.js';
export { renderList, renderSave, renderNames, memSize } from './render.js';
export { CoreSink, type IpsetCore } from './core.js';
export { TYPES, type TypeName, type TypeDef } from './types.js';
