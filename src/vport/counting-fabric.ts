/**
 * A FabricPort that counts what passes through it for `npiv-hba vport stats`: the guest's SCSI
 * commands and their outcome, data moved each way, and link events. It changes nothing: every call
 * is forwarded and its result returned as is.
 */
import type { FabricEvent, FabricPort, FcpCommand, FcpResult } from '../isp/fabric-port.js';
import type { VportStatsWriter } from './stats.js';

const SAM_STAT_GOOD = 0x00;

export function countingFabricPort(inner: FabricPort, stats: VportStatsWriter): FabricPort {
  return counting(inner, stats, true);
}

/**
 * physical: the port's own link (its state is the one `vport stats` shows); a guest NPIV vport
 * on that link (createVport) counts its I/O into the same stats but leaves the link state alone.
 */
function counting(inner: FabricPort, stats: VportStatsWriter, physical: boolean): FabricPort {
  if (physical) {
    inner.onEvent((e: FabricEvent) => {
      if (e.type === 'link-up') stats.setLink('up');
      else if (e.type === 'link-down') stats.setLink('down');
    });
  }
  const createVport = inner.createVport?.bind(inner);
  return {
    isLinkUp: () => inner.isLinkUp(),
    async login(wwpn, wwnn) {
      const result = await inner.login(wwpn, wwnn);
      if (physical) stats.setLink('up');
      return result;
    },
    logout: () => inner.logout(),
    plogi: (id) => inner.plogi(id),
    prli: (id) => inner.prli(id),
    adisc: (id) => inner.adisc(id),
    logo: (id) => inner.logo(id),
    prlo: (id) => inner.prlo(id),
    ct: (id, request, max) => inner.ct(id, request, max),
    async fcp(portId: number, command: FcpCommand): Promise<FcpResult> {
      stats.count('iosStarted');
      let result: FcpResult;
      try {
        result = await inner.fcp(portId, command);
      } catch (err) {
        stats.count('iosFailed');
        stats.count('errors');
        throw err;
      }
      if (result.transportError !== undefined) {
        stats.count('iosFailed');
        stats.count('errors');
        return result;
      }
      stats.count(result.scsiStatus === SAM_STAT_GOOD ? 'iosCompleted' : 'iosFailed');
      if (command.direction === 'read' && result.transferred > 0) stats.count('bytesRead', result.transferred);
      if (command.direction === 'write' && result.transferred > 0) stats.count('bytesWritten', result.transferred);
      return result;
    },
    taskManagement: (id, lun, fn) => inner.taskManagement(id, lun, fn),
    abort: (id, tag) => inner.abort(id, tag),
    onEvent: (listener) => inner.onEvent(listener),
    ...(createVport ? { createVport: () => counting(createVport(), stats, false) } : {}),
  };
}
