/** The in-process SAN + emulated ISP2532 rig now lives in src/harness/isp-rig.ts (npiv-hba compat uses it too). */
export * from '../../../src/harness/isp-rig.js';
