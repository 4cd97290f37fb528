/** I_T nexus identity (SAM-5 §4.6): initiator port name + target port name. */
import type { ItNexus } from './api.js';

export type NexusKey = string;

export function nexusKey(n: ItNexus): NexusKey {
  return `${n.initiatorWwpn.toString(16).padStart(16, '0')}/${n.targetWwpn.toString(16).padStart(16, '0')}`;
}
