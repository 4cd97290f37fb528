/** Moved to src/util/warn-limit.ts (also used by the vfio-user server); kept for existing imports. */
export { WarnLimiter } from '../util/warn-limit.js';
