// index.ts — the iptables text front end's public surface: parse iptables-restore text into a
// typed Ruleset (validated, with the set of chains each restore changed) and render it back as
// iptables-save, `iptables -S` or `iptables -L -n -v` output. Platform-neutral: no node: imports.
// The compiler to the core reads the Ruleset/Table/Chain/Rule/Match/Target types from here.

export { parseRestore, ruleLine } from './restore.js';
export type { RestoreOptions, RestoreResult, RestoreError, Touched } from './restore.js';
export type { CounterReset } from './commands.js';
export { renderSave, saveLines, joinLines, ctime, kernelOrder, appendLine, ruleSpec, sameRule } from './save.js';
export type { SaveOptions } from './save.js';
export { renderRules, renderList, rulesLines, listLines, ChainLines } from './list.js';
export type { CounterSource, ListOptions, RulesOptions, RuleLines } from './list.js';
export { Ruleset, Table, LayeredMap, BUILTIN_CHAINS, HOOK_BIT, emptyTable } from './ruleset.js';
export type { Chain } from './ruleset.js';
export { ruleHooks, parseCommand, parseRuleText } from './rule.js';
export { targetTable, targetHooks } from './ext-target.js';
export { RuleError } from './ext.js';
export * from './model.js';
