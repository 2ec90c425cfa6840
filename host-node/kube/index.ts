// index.ts — the kube/ control plane's public surface: Kubernetes objects and manifests, change
// trackers, the per-family model, endpoint categorizing and the renderers (iptables, ipvs, nftables, direct). Platform
// neutral (the browser imports it); re-exports only, no logic.
export * from './ip.js';
export * from './objects.js';
export * from './model.js';
export * from './tracker.js';
export * from './categorize.js';
export * from './chain-names.js';
export * from './proxy-state.js';
export * from './render-iptables.js';
export * from './source.js';
export * from './jump-chains.js';
export * from './render-ipvs.js';
export * from './render-direct.js';
export * from './render-nftables.js';
